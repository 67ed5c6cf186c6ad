"""Nightly schedules: repositories audited every day at a fixed UTC time.

The scheduler (Celery beat) only asks "what is due now?" every minute; the day a schedule last
started is claimed in the database with one conditional UPDATE, so a second beat, a restarted
beat or a late check never start the same night twice, and a night missed while beat was down
starts at the next check.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from aixaudit.errors import ConfigError
from aixaudit.store.tables import Schedule

_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def check_time(at: str) -> str:
    """`at` as HH:MM (UTC, 24-hour clock), zero-padded so that times compare as text."""
    parts = at.strip().split(":")
    padded = ":".join(part.zfill(2) for part in parts)
    if not _TIME.match(padded):
        raise ConfigError(f"{at!r} is not a time of day as HH:MM (24-hour clock, UTC).")
    return padded


def add_schedule(
    session: Session,
    *,
    origin: str,
    ref: str | None,
    at: str,
    options: dict[str, Any],
    acceptance_rule: dict[str, Any],
    now: datetime,
    execution: dict[str, Any] | None = None,
) -> Schedule:
    """Register `origin` for nightly audits; the first one starts at the next `at`, not today
    when that time has passed already. Each nightly run asks for an execution with the options
    `execution` (aixaudit.execution) when given."""
    at = check_time(at)
    duplicate = session.scalars(
        select(Schedule.id).where(Schedule.origin == origin, _same_ref(ref))
    ).first()
    if duplicate is not None:
        where = ref or "its default branch"
        raise ConfigError(f"{origin} at {where} is already schedule {duplicate}.")
    schedule = Schedule(
        origin=origin,
        ref=ref,
        at=at,
        options=options,
        acceptance_rule=acceptance_rule,
        execution=execution,
        last_started_on=now.date() if at <= now.strftime("%H:%M") else None,
    )
    session.add(schedule)
    session.flush()
    return schedule


def _same_ref(ref: str | None) -> Any:
    return Schedule.ref.is_(None) if ref is None else Schedule.ref == ref


def list_schedules(session: Session) -> list[Schedule]:
    return list(session.scalars(select(Schedule).order_by(Schedule.id)))


def get_schedule(session: Session, *, schedule_id: int) -> Schedule:
    schedule = session.get(Schedule, schedule_id)
    if schedule is None:
        raise ConfigError(f"There is no schedule with id {schedule_id}.")
    return schedule


def remove_schedule(session: Session, *, schedule_id: int) -> None:
    """Delete a schedule; its runs stay (their schedule_id becomes null)."""
    session.delete(get_schedule(session, schedule_id=schedule_id))
    session.flush()


def claim_due(session: Session, *, now: datetime) -> list[int]:
    """Mark every schedule due at `now` (UTC) as started today and return their ids; a schedule
    already started today, by this or any other caller, is not returned again."""
    today = now.date()
    claimed = session.scalars(
        update(Schedule)
        .where(
            Schedule.at <= now.strftime("%H:%M"),
            or_(Schedule.last_started_on.is_(None), Schedule.last_started_on < today),
        )
        .values(last_started_on=today)
        .returning(Schedule.id)
    )
    return sorted(claimed)
