"""Settings shared by the CLI, the workers and the API (environment variables AIXAUDIT_*)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from aixaudit.errors import ConfigError

ENV_PREFIX = "AIXAUDIT_"


def _default_data_dir() -> Path:
    return Path.home() / ".aixaudit"


ApiScope = Literal["read", "write"]


def _scoped_tokens(value: object) -> object:
    """`scope:token,scope:token` (as the environment spells AIXAUDIT_API_TOKENS) as pairs."""
    if not isinstance(value, str):
        return value
    pairs = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        scope, _, token = item.partition(":")
        if not token.strip():
            raise ValueError(
                "API tokens are comma-separated scope:token pairs (scope read or write)"
            )
        pairs.append((scope.strip(), token.strip()))
    return pairs


class Settings(BaseSettings):
    """Every knob in one place; each can be set as AIXAUDIT_<NAME> or in a `.env` file."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = None  # None: SQLite file in data_dir
    # The only directories whose local paths (and file:// URLs) the API and the workers may
    # audit, separated by ':' (or a JSON list); none by default. The CLI audits any path.
    allowed_roots: Annotated[list[Path], NoDecode] = []

    # Triton. No URL: `aixaudit audit` starts the bundled CPU server itself.
    triton_url: str | None = None
    triton_protocol: Literal["grpc", "http"] = "grpc"  # gRPC (asyncio) or HTTP
    triton_model: str = Field("ensemble", min_length=1)
    request_timeout_s: float = Field(120.0, gt=0)  # from the moment a request is sent
    max_in_flight: int = Field(8, ge=1)
    max_retries: int = Field(4, ge=0)
    retry_backoff_s: float = Field(0.5, ge=0)

    # The CPU stand-in model served by `aixaudit serve`.
    cpu_model: str = "smollm2-135m"
    cpu_model_dir: Path | None = None  # None: data_dir / "models" / cpu_model
    tokenizer_dir: Path | None = None  # the production model's tokenizer, for token budgets

    # Distributed audits (workers/): Celery on Redis.
    broker_url: str = "redis://127.0.0.1:6379/0"
    result_backend: str = "redis://127.0.0.1:6379/1"
    chunk_size: int = Field(16, ge=1, le=256)  # points per task: few tasks, little redone on a loss
    task_time_limit_s: int = Field(3600, ge=10)  # a task running longer is killed
    # Prefix of every Redis key (queues, results, chords): deployments and test sessions that
    # share one Redis stay apart.
    celery_key_prefix: str = ""
    regression_threshold: float = Field(0.05, ge=0)  # a headline metric's drop that flags a run
    schedule_check_s: float = Field(60.0, gt=0)  # how often beat looks for due nightly audits
    # What the served model is, e.g. its engine build; results are reused and runs compared
    # only under the same identity. Default: the model name at the Triton URL, or the embedded
    # CPU model's name when `aixaudit audit` starts its own server.
    model_identity: str | None = None

    # The HTTP API's bearer tokens, e.g. "write:TOKEN1,read:TOKEN2"; a write token reads too.
    # None: `aixaudit api` listens on loopback only, reads are open and writes refused.
    api_tokens: Annotated[
        tuple[tuple[ApiScope, SecretStr], ...], NoDecode, BeforeValidator(_scoped_tokens)
    ] = ()
    api_open_reads: bool = False  # reads without a token, even when tokens are configured

    @field_validator("database_url")
    @classmethod
    def _parsable_url(cls, url: str | None) -> str | None:
        try:
            make_url(url or "sqlite://")
        except ArgumentError as error:  # not a ValueError: pydantic would let it through
            raise ValueError(str(error)) from None
        return url

    @field_validator("allowed_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        if isinstance(value, str):
            return (
                json.loads(value) if value.startswith("[") else [v for v in value.split(":") if v]
            )
        return value

    @property
    def visibility_timeout_s(self) -> int:
        """How long Redis waits for an unacknowledged task before it hands it out again: longer
        than any task may run, or a slow task would run twice at once."""
        return 2 * self.task_time_limit_s

    @property
    def model(self) -> str:
        if self.model_identity:
            return self.model_identity
        return f"{self.triton_model}@{self.triton_url or f'embedded:{self.cpu_model}'}"

    @property
    def sqlite_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'aixaudit.db'}"

    @property
    def db_url(self) -> str:
        return self.database_url or self.sqlite_url

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def repos_dir(self) -> Path:
        return self.data_dir / "repos"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once; an invalid one is a ConfigError naming it."""
    try:
        return Settings()
    except ValidationError as error:
        raise ConfigError(settings_error(error)) from None


def settings_error(error: ValidationError) -> str:
    """One sentence for pydantic's report: which settings, what value, what is wrong (URLs and
    tokens are not repeated: they may hold a secret)."""
    problems = []
    for item in error.errors(include_url=False):
        name = ENV_PREFIX + "_".join(str(part) for part in item["loc"]).upper()
        shown = name if name.endswith(("_URL", "_TOKENS")) else f"{name}={item['input']!r}"
        problems.append(f"{shown}: {item['msg'].rstrip('.')}")
    return f"Invalid setting {'; '.join(problems)}."
