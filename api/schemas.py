"""Request and response bodies: the API's contract, kept apart from the tables and the store's
dataclasses (responses read them by attribute), so either can change behind it."""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aixaudit.audit import AuditOptions
from aixaudit.errors import ConfigError
from aixaudit.prompts import get_profile
from aixaudit.scoring import AcceptanceRule
from aixaudit.sources import is_git_url
from aixaudit.store.trends import TrendBy


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class IntervalOut(Schema):
    """A 95% interval and the number of observations behind it: a Wilson score interval for a
    rate (n: suggestions), a seeded bootstrap over files for a mean or a paired difference (n:
    suggestions or pairs with a value)."""

    low: float
    high: float
    n: int


class RunOut(Schema):
    """One run, as listed; times are ISO 8601 in UTC."""

    id: int
    repository_id: int
    origin: str
    name: str
    ref: str | None
    commit: str | None
    status: str = Field(description="pending, running, done, partial, failed or cancelled")
    profile: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    error: str | None
    points_total: int
    suggestions: int = Field(description="suggestions that came back from the model")
    errors: int = Field(description="points whose every request failed")
    accepted: int
    acceptance_rate: float | None = Field(description="accepted / suggestions")
    acceptance_interval: IntervalOut | None = Field(
        description="Wilson 95% interval of the acceptance rate; null without suggestions"
    )
    reused: int = Field(description="results taken over from an earlier run")
    regression: bool | None = Field(description="vs the previous finished run; null: not compared")


class BreakdownOut(Schema):
    """Tallies over a group of points: a language, a span kind, or the whole run ("all")."""

    key: str
    points: int
    suggestions: int
    errors: int
    accepted: int
    acceptance_rate: float | None
    lines_suggested: int
    lines_accepted: int
    chars_suggested: int
    chars_accepted: int
    mean_latency_ms: float | None
    metrics: dict[str, float] = Field(description="mean of each metric over the suggestions")
    intervals: dict[str, IntervalOut] = Field(
        description="95% interval and n of acceptance_rate (Wilson) and of each metric's mean "
        "(bootstrap over files); a mean over a single file has none"
    )


class MetricOut(Schema):
    name: str
    version: int
    definition: str
    higher_is_better: bool


class DeltaOut(Schema):
    """How far a headline number moved against the baseline run, on the points both answered."""

    metric: str
    baseline: float = Field(description="the baseline run's mean over the pairs")
    value: float = Field(description="this run's mean over the pairs")
    delta: float = Field(description="value - baseline, the mean of the paired differences")
    delta_low: float | None = Field(description="95% bootstrap interval of delta (over files)")
    delta_high: float | None
    pairs: int | None = Field(description="points paired; null on rows stored before intervals")
    regressed: bool = Field(description="the whole interval is worse than the threshold")


class RunReportOut(Schema):
    run: RunOut
    config: dict[str, Any] = Field(description="the audit options the run was planned with")
    acceptance_rule: dict[str, Any]
    files: int
    skipped: dict[str, int] = Field(description="files not audited, by skip reason")
    totals: BreakdownOut
    by_language: list[BreakdownOut]
    by_kind: list[BreakdownOut]
    by_role: list[BreakdownOut] = Field(
        description="by file role: source, test, example, generated"
    )
    metrics: list[MetricOut] = Field(description="definitions of the metrics the run used")
    baseline_run_id: int | None
    deltas: list[DeltaOut]


class PointOut(Schema):
    """A completion point and what the model answered (null fields: not answered yet)."""

    point_id: int
    path: str
    language: str | None
    kind: str
    role: str = Field(description="the file's role: source, test, example or generated")
    node_type: str
    start_line: int
    end_line: int
    original: str
    suggestion: str | None = Field(description="the post-processed suggestion, as scored")
    raw_text: str | None
    error: str | None
    accepted: bool | None
    reused: bool | None
    latency_ms: float | None
    lines_suggested: int | None
    lines_accepted: int | None
    chars_suggested: int | None
    chars_accepted: int | None
    scores: dict[str, float]


class SuggestionPageOut(Schema):
    run_id: int
    total: int = Field(description="points matching the filters, over all pages")
    offset: int
    limit: int
    items: list[PointOut]
    next_after: int | None = Field(
        None, description="the next page's `after` (a point id); null on the last page"
    )


class RepositoryOut(Schema):
    id: int
    origin: str
    name: str
    created_at: str
    runs: int
    last_run_at: str | None


class RepositoryRef(Schema):
    id: int
    origin: str
    name: str


class TrendPointOut(Schema):
    period: str = Field(description="the run's start time (by=run) or the UTC day (by=day)")
    run_ids: list[int]
    suggestions: int
    accepted: int
    acceptance_rate: float | None
    lines_suggested: int
    lines_accepted: int
    chars_suggested: int
    chars_accepted: int
    metrics: dict[str, float] = Field(description="means of exact_match and es_rapidfuzz")
    intervals: dict[str, IntervalOut] = Field(
        description="95% interval and n of acceptance_rate and of each of `metrics`"
    )
    regressed_run_ids: list[int] = Field(
        description="the point's runs flagged as a regression against their baseline run"
    )


class TrendOut(Schema):
    repository: RepositoryRef
    by: TrendBy
    points: list[TrendPointOut] = Field(description="finished runs only, oldest first")


class ComparedRunOut(Schema):
    id: int
    repository_id: int
    ref: str | None
    commit: str | None
    profile: str
    status: str
    created_at: datetime


class MetricComparisonOut(Schema):
    """One number on the pairs that have it: B - A with its 95% interval."""

    metric: str = Field(description="acceptance_rate, or a metric's name")
    n: int = Field(description="pairs with a value on both sides")
    a: float = Field(description="run A's mean over those pairs")
    b: float
    difference: float = Field(description="b - a, the mean of the paired differences")
    interval: IntervalOut | None = Field(
        description="95% cluster-bootstrap interval of the difference (resampling files); "
        "null when the pairs lie in one file"
    )


class GroupComparisonOut(Schema):
    grouping: str = Field(description="all, language, kind or role")
    key: str = Field(description="the language, span kind or file role (all: all)")
    pairs: int
    accepted_a_only: int
    accepted_b_only: int
    mcnemar_p: float = Field(description="McNemar's exact two-sided p-value for acceptance")
    metrics: list[MetricComparisonOut] = Field(description="acceptance_rate first, then by name")


class DisagreementOut(Schema):
    """A pair the runs scored most differently, with both suggestions."""

    path: str
    start_line: int
    end_line: int
    reference: str = Field(description="the original text of the span")
    text_a: str | None
    text_b: str | None
    score_a: float
    score_b: float


class ComparisonOut(Schema):
    """Run B against run A on the points both answered (same key and file content)."""

    a: ComparedRunOut
    b: ComparedRunOut
    pairs: int
    left_out_a: int = Field(description="points of A not paired (not in B, or not answered)")
    left_out_b: int
    disagreement_metric: str = Field(description="the metric of A's acceptance rule")
    groups: list[GroupComparisonOut] = Field(description="all, then by language, then by kind")
    disagreements: list[DisagreementOut] = Field(description="largest |B - A| first")


class AcceptanceIn(BaseModel):
    """When a suggestion counts as accepted (an exact match always does)."""

    model_config = ConfigDict(extra="forbid")

    metric: str = AcceptanceRule.metric
    threshold: float = AcceptanceRule.threshold
    require_parse: bool = AcceptanceRule.require_parse

    @model_validator(mode="after")
    def _valid(self) -> AcceptanceIn:
        self.rule()
        return self

    def rule(self) -> AcceptanceRule:
        try:
            return AcceptanceRule(self.metric, self.threshold, self.require_parse)
        except ConfigError as error:
            raise ValueError(str(error)) from None


class AuditRequest(BaseModel):
    """A distributed audit to plan on a worker."""

    model_config = ConfigDict(extra="forbid")

    location: str = Field(
        min_length=1, description="a git URL, or the absolute path of a directory the workers read"
    )
    ref: str | None = Field(None, description="branch, tag or commit of a git URL")
    options: AuditOptions = Field(
        AuditOptions(),
        description="without a profile: aixcoder on a configured Triton server, else l2r",
    )
    acceptance: AcceptanceIn = AcceptanceIn()

    @field_validator("location")
    @classmethod
    def _reachable(cls, location: str) -> str:
        if not (is_git_url(location) or PurePosixPath(location).is_absolute()):
            raise ValueError("location must be a git URL or an absolute path the workers can read")
        return location

    @field_validator("options")
    @classmethod
    def _known_profile(cls, options: AuditOptions) -> AuditOptions:
        try:
            get_profile(options.profile)
        except ConfigError as error:
            raise ValueError(str(error)) from None
        return options


class AuditQueued(BaseModel):
    task_id: str = Field(description="the planning task; its result is the run id")
    task_url: str


class TaskOut(BaseModel):
    task_id: str
    state: str = Field(description="Celery's state: PENDING, STARTED, SUCCESS, FAILURE, ...")
    run_id: int | None = Field(description="the planned run, once the task succeeded")
    error: str | None


class ErrorOut(BaseModel):
    """A refusal, in one sentence (validation errors, 422, list each bad field instead)."""

    detail: str


_ERRORS = {
    400: "the body is not JSON",
    401: "no token, or one that is not valid (a WWW-Authenticate header says which)",
    403: "the token's scope does not reach: a read token on a write",
    404: "no run, repository or task with that id",
    409: "the two runs cannot be compared: different commits, or too few shared points",
    503: "the task queue (Redis) cannot be reached: try again later",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` that document these error codes in the OpenAPI description."""
    return {code: {"model": ErrorOut, "description": _ERRORS[code]} for code in codes}


class RunControlOut(BaseModel):
    run_id: int
    status: str
    enqueued: int = Field(description="points enqueued again (resume); 0 for cancel")
