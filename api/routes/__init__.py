"""Every route under /api, one module per resource, each behind the token check."""

from __future__ import annotations

from fastapi import APIRouter

from api.auth import Authorized
from api.routes import compare, metrics, repositories, runs, tasks
from api.schemas import errors

api_router = APIRouter(prefix="/api", dependencies=[Authorized], responses=errors(401))
for module in (runs, compare, tasks, repositories, metrics):
    api_router.include_router(module.router)
