"""Which Triton server an audit talks to: the configured one, or the bundled CPU one.

With AIXAUDIT_TRITON_URL set, that server is used as it is. Without it, the bundled
tritonserver is started on loopback with the CPU stand-in model for as long as it is needed:
the embedded default that makes `aixaudit audit PATH` work on a bare machine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .config import Settings
from .inference import Endpoint, TritonCompleter
from .local_triton import serve_cpu_model
from .tokens import ModelTokenizer, TokenCounter, load_token_counter
from .weights import MARKER_NAME, cpu_model_dir


@dataclass(frozen=True)
class ModelAccess:
    endpoint: Endpoint
    model: str
    counter: TokenCounter  # the served model's tokenizer where we have it
    embedded: bool  # True when we started the server ourselves
    weights_sha256: str | None = None  # the embedded model's source weights

    def completer(self, settings: Settings) -> TritonCompleter:
        return TritonCompleter(
            self.endpoint,
            model=self.model,
            timeout_s=settings.request_timeout_s,
            max_in_flight=settings.max_in_flight,
            max_retries=settings.max_retries,
            backoff_s=settings.retry_backoff_s,
            weights_sha256=self.weights_sha256,
        )


def configured_endpoint(settings: Settings) -> Endpoint | None:
    """The configured server's address (ConfigError when it is not one), None when the bundled
    server will be started: checked before a run is planned, so a bad URL leaves no run."""
    if not settings.triton_url:
        return None
    return Endpoint.parse(settings.triton_url, default_protocol=settings.triton_protocol)


def embedded_weights_sha256(folder: Path) -> str | None:
    """The sha256 of the weights the CPU model was converted from, as the conversion noted it."""
    note = folder / MARKER_NAME
    return json.loads(note.read_text()).get("source_sha256") if note.is_file() else None


@contextmanager
def model_access(settings: Settings) -> Iterator[ModelAccess]:
    """The server to audit against, started (and stopped afterwards) if none is configured."""
    endpoint = configured_endpoint(settings)
    if endpoint is not None:
        counter = load_token_counter(settings.tokenizer_dir)
        yield ModelAccess(endpoint, settings.triton_model, counter, embedded=False)
        return
    server = serve_cpu_model(settings)
    try:
        address = server.grpc_url if settings.triton_protocol == "grpc" else server.http_url
        endpoint = Endpoint.parse(address, default_protocol=settings.triton_protocol)
        folder = cpu_model_dir(settings)
        yield ModelAccess(
            endpoint, settings.triton_model, ModelTokenizer(folder), embedded=True,
            weights_sha256=embedded_weights_sha256(folder),
        )  # fmt: skip
    finally:
        server.stop()
