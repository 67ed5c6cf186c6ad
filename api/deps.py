"""What routes take as dependencies: the settings, a database session, and ids in paths
(Annotated aliases)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, Path
from sqlalchemy.orm import Session, sessionmaker

from aixaudit.config import Settings, get_settings
from aixaudit.store import db

SettingsDep = Annotated[Settings, Depends(get_settings)]

# Ids are INTEGER columns, 32-bit in PostgreSQL: a larger number is a bad value (422), not an id
# to look up (the database would refuse it: 500).
MAX_INT = 2**31 - 1
IdPath = Annotated[int, Path(ge=1, le=MAX_INT)]


@lru_cache(maxsize=4)
def _session_factory(url: str) -> sessionmaker[Session]:
    # One engine (and its connection pool) per database URL for the life of the process. The
    # app does not migrate: `aixaudit api` and `aixaudit db upgrade` do, before it starts.
    return db.session_factory(db.make_engine(url))


def get_sessions(settings: SettingsDep) -> sessionmaker[Session]:
    return _session_factory(settings.db_url)


SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]


def get_session(sessions: SessionsDep) -> Iterator[Session]:
    """A session for one request, closed after it; writes use `sessions.begin()` instead."""
    with sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
