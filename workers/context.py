"""What a worker process keeps between tasks: its database engine and the tokenizer.

Made on first use in the process that uses them: a prefork worker forks its children before any
task runs, and an engine's connections must never be shared across a fork.
"""

from __future__ import annotations

import os
from functools import lru_cache

from sqlalchemy.orm import Session, sessionmaker

from aixaudit.config import get_settings
from aixaudit.errors import ConfigError
from aixaudit.inference import Endpoint, TritonCompleter
from aixaudit.model_server import ModelAccess
from aixaudit.store import db
from aixaudit.tokens import TokenCounter, load_token_counter


def sessions() -> sessionmaker[Session]:
    return _sessions(os.getpid())


@lru_cache(maxsize=1)
def _sessions(pid: int) -> sessionmaker[Session]:
    # Keyed by the process id: a forked child gets an engine of its own. Workers never migrate:
    # a database at another revision fails the task (SchemaError) until `aixaudit db upgrade`.
    url = get_settings().db_url
    db.require_current(url)
    return db.session_factory(db.make_engine(url))


@lru_cache(maxsize=1)
def model_access() -> ModelAccess:
    """The configured Triton server: workers never start one of their own (one per worker
    process would hold a model each)."""
    settings = get_settings()
    if not settings.triton_url:
        raise ConfigError("Workers need a Triton server: set AIXAUDIT_TRITON_URL.")
    endpoint = Endpoint.parse(settings.triton_url, default_protocol=settings.triton_protocol)
    counter: TokenCounter = load_token_counter(settings.tokenizer_dir)
    return ModelAccess(endpoint, settings.triton_model, counter, embedded=False)


def completer() -> TritonCompleter:
    """A new completer per task: its channel belongs to the task's event loop."""
    return model_access().completer(get_settings())
