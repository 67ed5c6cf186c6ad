"""The metrics this aixaudit scores with."""

from __future__ import annotations

from fastapi import APIRouter

from aixaudit.scoring import METRICS
from api.schemas import MetricOut

router = APIRouter(prefix="/metrics", tags=["metrics"])


@router.get("")
def list_metrics() -> list[MetricOut]:
    """Every registered metric with its version, definition and direction, by name (runs store
    the versions they were scored with: see a run's report)."""
    return [MetricOut.model_validate(METRICS[name]) for name in sorted(METRICS)]
