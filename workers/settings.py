"""The settings of distributed audits: aixaudit's Settings plus what only jobs need.

Every process of a deployment (CLI, workers, beat, API) reads the same AIXAUDIT_* environment,
so they agree on the broker, the database, the Triton server and the chunking.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from aixaudit.config import Settings


class WorkerSettings(Settings):
    chunk_size: int = Field(16, ge=1, le=256)  # points per task: few tasks, little redone on a loss
    task_time_limit_s: int = Field(3600, ge=10)  # a task running longer is killed
    # Prefix of every Redis key (queues, results, chords): deployments and test sessions that
    # share one Redis stay apart.
    celery_key_prefix: str = ""
    regression_threshold: float = Field(0.05, ge=0)  # a headline metric's drop that flags a run
    schedule_check_s: float = Field(60.0, gt=0)  # how often beat looks for due nightly audits
    # What the served model is, e.g. its engine build; results are reused only under the same
    # identity. Default: the model name at the Triton URL.
    model_identity: str | None = None

    @property
    def visibility_timeout_s(self) -> int:
        """How long Redis waits for an unacknowledged task before it hands it out again: longer
        than any task may run, or a slow task would run twice at once."""
        return 2 * self.task_time_limit_s

    @property
    def model(self) -> str | None:
        if self.model_identity:
            return self.model_identity
        return f"{self.triton_model}@{self.triton_url}" if self.triton_url else None


@lru_cache(maxsize=1)
def get_worker_settings() -> WorkerSettings:
    return WorkerSettings()
