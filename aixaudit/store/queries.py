"""Reads and writes of audit data; every option is keyword-only.

The functions flush but never commit: the caller owns the transaction (`with session.begin():`),
so a task's writes land together or not at all. Writes of many rows are bulk inserts
(`session.execute(insert(Model), rows)`), one statement per batch rather than one per row.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Row,
    and_,
    any_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session

from aixaudit.errors import RunNotFound
from aixaudit.store.rows import FileRow, PointRow, ResultRow
from aixaudit.store.tables import (
    Blob,
    File,
    Metric,
    Point,
    Repository,
    Run,
    RunRollup,
    RunStatus,
    Score,
    Suggestion,
    utcnow,
)

# Keys per `IN (...)` list when reading ids back: far below SQLite's and PostgreSQL's limits on
# bound parameters, whatever the batch size.
_IN_CHUNK = 500


class MetricSpec(Protocol):
    """What the store needs to know of a metric (aixaudit.scoring.Metric has it)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def definition(self) -> str: ...
    @property
    def higher_is_better(self) -> bool: ...


def _insert(session: Session, table: FromClause) -> Any:
    """A Core INSERT in the session's dialect, for ON CONFLICT clauses."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _insert_or_skip(session: Session, table: FromClause, *, unique: list[str]) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING on the unique columns."""
    return _insert(session, table).on_conflict_do_nothing(index_elements=unique)


def _ids_by(
    session: Session,
    key: InstrumentedAttribute[Any],
    id_: InstrumentedAttribute[int],
    keys: Sequence[Any],
    *where: ColumnElement[bool],
) -> dict[Any, int]:
    found: dict[Any, int] = {}
    for start in range(0, len(keys), _IN_CHUNK):
        stmt = select(key, id_).where(*where, key.in_(keys[start : start + _IN_CHUNK]))
        found.update(session.execute(stmt).all())
    return found


def get_or_create_repository(session: Session, *, origin: str, name: str) -> Repository:
    """The repository for `origin`; safe when two audits of the same origin start at once."""
    new = {"origin": origin, "name": name}
    session.execute(_insert_or_skip(session, Repository.__table__, unique=["origin"]), [new])
    return session.scalars(select(Repository).where(Repository.origin == origin)).one()


def create_run(
    session: Session,
    *,
    repository_id: int,
    ref: str | None,
    commit: str | None,
    profile: str,
    config: dict[str, Any],
    acceptance_rule: dict[str, Any],
    plan_key: str | None = None,
) -> Run:
    """A pending run; a `plan_key` already taken fails the flush (IntegrityError)."""
    run = Run(
        repository_id=repository_id,
        ref=ref,
        commit=commit,
        profile=profile,
        config=config,
        acceptance_rule=acceptance_rule,
        status=RunStatus.PENDING.value,
        plan_key=plan_key,
    )
    session.add(run)
    session.flush()
    return run


def planned_run_id(session: Session, *, plan_key: str) -> int | None:
    """The run planned under `plan_key`, if any."""
    return session.scalar(select(Run.id).where(Run.plan_key == plan_key))


def get_run(session: Session, *, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise RunNotFound(f"There is no run with id {run_id}.")
    return run


def add_files(session: Session, *, run_id: int, files: Sequence[FileRow]) -> dict[str, int]:
    """Insert File rows (dicts of its columns but run_id); returns path -> file id."""
    if not files:
        return {}
    session.execute(insert(File), [{**row, "run_id": run_id} for row in files])
    paths = [row["path"] for row in files]
    return _ids_by(session, File.path, File.id, paths, File.run_id == run_id)


def file_ids(session: Session, *, run_id: int, paths: Sequence[str]) -> dict[str, int]:
    """path -> file id, for files of the run."""
    return _ids_by(session, File.path, File.id, paths, File.run_id == run_id)


def add_points(session: Session, *, run_id: int, points: Sequence[PointRow]) -> dict[str, int]:
    """Insert Point rows (dicts of its columns but run_id, file_id included); returns
    point key -> point id."""
    if not points:
        return {}
    session.execute(insert(Point), [{**row, "run_id": run_id} for row in points])
    keys = [row["key"] for row in points]
    return _ids_by(session, Point.key, Point.id, keys, Point.run_id == run_id)


def add_blobs(session: Session, *, blobs: Mapping[str, str]) -> None:
    """Store file texts by content hash; a text already stored is not written again."""
    if blobs:
        rows = [{"sha256": sha, "text": text} for sha, text in blobs.items()]
        session.execute(_insert_or_skip(session, Blob.__table__, unique=["sha256"]), rows)


def get_blobs(session: Session, *, shas: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(shas))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        stmt = select(Blob.sha256, Blob.text).where(Blob.sha256.in_(chunk))
        found.update(session.execute(stmt).all())
    return found


@dataclass(frozen=True)
class PendingPoint:
    """A point still to be answered, with what building its prompt needs."""

    id: int
    run_id: int
    path: str
    language: str
    sha256: str
    kind: str
    node_type: str
    start_byte: int
    end_byte: int
    original: str


def _pending(run_id: int) -> tuple[ColumnElement[bool], ...]:
    """Points of the run without a usable result: no suggestion yet, or only a failed request."""
    answered = exists().where(Suggestion.point_id == Point.id, Suggestion.error.is_(None))
    return Point.run_id == run_id, ~answered


# By file, so that one file's requests go out together.
_FILE_ORDER = (File.path, Point.start_byte, Point.id)


def pending_points(
    session: Session, *, run_id: int, point_ids: Sequence[int] | None = None
) -> list[PendingPoint]:
    """Points of the run without a usable result: no suggestion yet, or only a failed request.
    Ordered by file, so that one file's requests go out together."""
    stmt = (
        select(
            Point.id,
            Point.run_id,
            File.path,
            File.language,
            File.sha256,
            Point.kind,
            Point.node_type,
            Point.start_byte,
            Point.end_byte,
            Point.original,
        )
        .join(File, Point.file_id == File.id)
        .where(*_pending(run_id))
        .order_by(*_FILE_ORDER)
    )
    if point_ids is not None:
        stmt = stmt.where(Point.id.in_(list(point_ids)))
    return [PendingPoint(**row._asdict()) for row in session.execute(stmt)]


def pending_point_ids(session: Session, *, run_id: int) -> list[int]:
    """The ids of `pending_points`, in its order, without reading the points' texts."""
    stmt = (
        select(Point.id)
        .join(File, Point.file_id == File.id)
        .where(*_pending(run_id))
        .order_by(*_FILE_ORDER)
    )
    return list(session.scalars(stmt))


def count_results(session: Session, *, run_id: int) -> tuple[int, int]:
    """(points with a stored suggestion row, of which failed requests) for a run."""
    answered, failed = session.execute(
        select(
            func.count(Suggestion.id),
            func.coalesce(func.sum(case((Suggestion.error.is_not(None), 1), else_=0)), 0),
        ).where(Suggestion.run_id == run_id)
    ).one()
    return int(answered), int(failed)


def add_results(
    session: Session, *, results: Sequence[ResultRow], metrics: Mapping[str, MetricSpec]
) -> None:
    """Store suggestions and their scores, exactly once per point.

    Each result is a dict of Suggestion columns (point_id and run_id included) plus "scores":
    {metric name: value}; `metrics` (aixaudit.scoring.METRICS) gives each name's version and
    definition. Safe to repeat (a redelivered task, a resumed run): a point that already has a
    good suggestion keeps it, and a failed request's row is replaced by the new result.
    Three Core statements per call (metrics, suggestions, scores), each one executemany.
    """
    if not results:
        return
    used = sorted({name for result in results for name in result.get("scores", {})})
    unknown = [name for name in used if name not in metrics]
    if unknown:
        raise ValueError(f"scores name metrics that are not registered: {', '.join(unknown)}")
    if used:
        session.execute(
            _insert_or_skip(session, Metric.__table__, unique=["name", "version"]),
            [
                {
                    "name": name,
                    "version": metrics[name].version,
                    "definition": metrics[name].definition,
                    "higher_is_better": metrics[name].higher_is_better,
                }
                for name in used
            ],
        )
    by_point = {result["point_id"]: result for result in reversed(results)}  # first one wins
    rows = _same_keys(
        Suggestion.__table__,
        [{k: v for k, v in result.items() if k != "scores"} for result in by_point.values()],
    )
    written = session.execute(_write_suggestions(session), rows)
    ids = {point_id: suggestion_id for point_id, suggestion_id in written}
    scores = [
        {
            "suggestion_id": ids[point_id],
            "metric_name": name,
            "metric_version": metrics[name].version,
            "value": float(value),
        }
        for point_id, result in by_point.items()
        if point_id in ids
        for name, value in result.get("scores", {}).items()
    ]
    if scores:
        session.execute(_insert(session, Score.__table__), scores)


def _write_suggestions(session: Session) -> Any:
    """INSERT a suggestion per point; on a point that has one, replace it only where it is a
    failed request (a good answer is never replaced). RETURNING (point_id, id) of the rows
    written, so only their scores are written: a kept answer keeps its own."""
    table = Suggestion.__table__
    stmt = _insert(session, table)
    replaced = {c.name: stmt.excluded[c.name] for c in table.c if c.name not in ("id", "point_id")}
    return stmt.on_conflict_do_update(
        index_elements=["point_id"], set_=replaced, where=table.c.error.is_not(None)
    ).returning(table.c.point_id, table.c.id)


def _same_keys(table: FromClause, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with the keys of all of them (a missing one at its column's default): one
    executemany statement binds one set of keys."""
    keys = set().union(*rows)
    if all(len(row) == len(keys) for row in rows):
        return rows
    defaults = {key: _default(table.c[key]) for key in keys}
    return [defaults | row for row in rows]


def _default(column: Any) -> Any:
    default = column.default
    if default is None:
        return None
    return default.arg(None) if default.is_callable else default.arg


def set_run_status(
    session: Session, *, run_id: int, status: RunStatus | str, error: str | None = None
) -> None:
    """Move a run to `status`, stamping started_at on the first start and finished_at at the end."""
    run = get_run(session, run_id=run_id)
    status = RunStatus(status)
    run.status = status.value
    run.error = error
    if status is RunStatus.RUNNING and run.started_at is None:
        run.started_at = utcnow()
    if status.is_final:
        run.finished_at = utcnow()
    session.flush()


def move_run(
    session: Session,
    *,
    run_id: int,
    to: RunStatus,
    only_from: Collection[RunStatus],
    error: str | None = None,
) -> bool:
    """`set_run_status`, but only while the run's status is one of `only_from`, in one
    conditional UPDATE: a status another process wrote meanwhile (a cancel) is never
    overwritten. Returns whether the run moved."""
    now = utcnow()
    values: dict[str, Any] = {"status": to.value, "error": error}
    if to is RunStatus.RUNNING:
        values["started_at"] = func.coalesce(
            Run.started_at, bindparam("now", now, Run.started_at.type)
        )
    if to.is_final:
        values["finished_at"] = now
    moved = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status.in_([status.value for status in only_from]))
        .values(values)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()
    return bool(moved.rowcount)  # type: ignore[attr-defined]


FINAL = [status.value for status in RunStatus if status.is_final]


def fresh_rollups(
    session: Session, *, run_ids: Collection[int], columns: Sequence[InstrumentedAttribute[Any]]
) -> dict[int, Row[Any]]:
    """The stored rollup `columns` of those runs that are final and finished when their
    rollup was computed, by run id; any other run is computed from its rows."""
    stmt = (
        select(RunRollup.run_id, *columns)
        .join(Run, and_(Run.id == RunRollup.run_id, Run.finished_at == RunRollup.finished_at))
        .where(RunRollup.run_id.in_(list(run_ids)), Run.status.in_(FINAL))
    )
    return {row.run_id: row for row in session.execute(stmt)}


def save_rollup(session: Session, *, run_id: int, values: Mapping[str, Any]) -> None:
    """Replace the run's rollup (RunRollup columns but run_id)."""
    session.execute(delete(RunRollup).where(RunRollup.run_id == run_id))
    session.execute(insert(RunRollup), [{**values, "run_id": run_id}])


def scores_of_run(session: Session, *, run_id: int) -> ColumnElement[bool]:
    """The condition on Score rows that keeps the run's: on PostgreSQL an index lookup of the
    run's suggestion ids (`= ANY(ARRAY(...))`), which the planner otherwise answers with a
    hash join over every score in the store, a cost that grows with the store, not the run."""
    ids = select(Suggestion.id).where(Suggestion.run_id == run_id)
    if session.get_bind().dialect.name == "postgresql":
        return Score.suggestion_id == any_(func.array(ids.scalar_subquery()))
    return Score.suggestion_id.in_(ids)
