"""Every route under /api, one module per resource."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import metrics, repositories, runs, tasks

api_router = APIRouter(prefix="/api")
for module in (runs, tasks, repositories, metrics):
    api_router.include_router(module.router)
