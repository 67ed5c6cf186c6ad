"""The task queue as the API uses it. A request waits for Redis a couple of seconds at most (the
workers keep retrying for long; a web client would rather hear 503 and try again), and the API
records each task it sends, because Celery reads any unknown task id as PENDING."""

from __future__ import annotations

from typing import cast

from celery import Celery, states
from celery.backends.base import BaseKeyValueStoreBackend
from celery.utils import uuid

REDIS_WAIT_S = 2.0  # to connect, or for one answer


def fail_fast(app: Celery) -> None:
    """No publish retries and short socket timeouts for this process's app (the API's); call it
    before the app first sends or reads anything."""
    timeouts = {"socket_connect_timeout": REDIS_WAIT_S, "socket_timeout": REDIS_WAIT_S}
    once = {"max_retries": 0}
    app.conf.update(
        task_publish_retry=False,
        broker_transport_options={**app.conf.broker_transport_options, **timeouts, **once},
        result_backend_transport_options={
            **app.conf.result_backend_transport_options,
            "retry_policy": once,
        },
        redis_socket_connect_timeout=REDIS_WAIT_S,
        redis_socket_timeout=REDIS_WAIT_S,
    )


def new_task_id(app: Celery) -> str:
    """A task id to send a task under, after storing its PENDING state: the record that this id
    exists, kept as long as results are (`result_expires`)."""
    task_id = uuid()
    app.backend.store_result(task_id, None, states.PENDING)
    return task_id


def is_known(app: Celery, task_id: str) -> bool:
    """Whether a state was stored for `task_id`: one from `new_task_id`, not yet expired."""
    backend = cast(BaseKeyValueStoreBackend, app.backend)  # Redis: a key-value store
    return backend.get(backend.get_key_for_task(task_id)) is not None
