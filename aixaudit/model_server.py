"""Which Triton server an audit talks to: the configured one, or the bundled CPU one.

With AIXAUDIT_TRITON_URL set, that server is used as it is. Without it, the bundled
tritonserver is started on loopback with the CPU stand-in model for as long as it is needed:
the embedded default that makes `aixaudit audit PATH` work on a bare machine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .config import Settings
from .ensemble import DECLARED_PROFILE, DECLARED_TOKENIZER_DIR, DECLARED_TOKENIZER_SHA256
from .errors import ServerError
from .inference import Endpoint, TritonCompleter
from .local_triton import CPU_MODEL_PROFILE, serve_cpu_model
from .tokens import ApproximateTokenizer, ModelTokenizer, TokenCounter, tokenizer_sha256
from .weights import cpu_model_dir, source_sha256


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


@contextmanager
def model_access(settings: Settings) -> Iterator[ModelAccess]:
    """The server to audit against, started (and stopped afterwards) if none is configured."""
    endpoint = configured_endpoint(settings)
    if endpoint is not None:
        counter = counter_for(settings, declared_by(settings))
        yield ModelAccess(endpoint, settings.triton_model, counter, embedded=False)
        return
    server = serve_cpu_model(settings)
    try:
        address = server.grpc_url if settings.triton_protocol == "grpc" else server.http_url
        endpoint = Endpoint.parse(address, default_protocol=settings.triton_protocol)
        folder = cpu_model_dir(settings)
        yield ModelAccess(
            endpoint, settings.triton_model, ModelTokenizer(folder), embedded=True,
            weights_sha256=source_sha256(folder),
        )  # fmt: skip
    finally:
        server.stop()


DECLARED_TIMEOUT_S = 10.0
log = logging.getLogger(__name__)


def declared_by(settings: Settings) -> dict[str, str]:
    """What the configured server declares about its model (aixaudit.ensemble.DECLARED_KEYS);
    nothing when none is configured or it cannot be asked now (asking to complete then fails
    the run with the reason)."""
    endpoint = configured_endpoint(settings)
    if endpoint is None:
        return {}

    async def ask() -> dict[str, str]:
        completer = TritonCompleter(
            endpoint, model=settings.triton_model, timeout_s=DECLARED_TIMEOUT_S
        )
        async with completer:
            return await asyncio.wait_for(completer.declared(), DECLARED_TIMEOUT_S)

    try:
        return asyncio.run(ask())
    except (ServerError, TimeoutError) as error:
        log.info("%s; its declared profile and tokenizer are not used", error)
        return {}


def profile_for(settings: Settings, asked: str | None) -> str:
    """A run's prompt format: the one asked, else the one the server declares, else l2r on
    the embedded CPU model and aixcoder on a configured server. An asked profile that differs
    from the declared one wins, with a warning: asking a fill-in-the-middle model left to
    right is a fair experiment, but the other way round every request fails."""
    declared = declared_by(settings).get(DECLARED_PROFILE)
    if asked is None:
        return declared or ("aixcoder" if settings.triton_url else CPU_MODEL_PROFILE)
    if declared and declared != asked:
        log.warning(
            "The profile %s was asked, but the server at %s declares %s: prompts follow %s.",
            asked, settings.triton_url, declared, asked,
        )  # fmt: skip
    return asked


def counter_for(settings: Settings, declared: Mapping[str, str]) -> TokenCounter:
    """The tokenizer that counts a run's tokens: AIXAUDIT_TOKENIZER_DIR when set, else the
    server's declared tokenizer where this machine has the same file (its sha256), else an
    approximation. A warning says when counts may differ from the server's."""
    folder, sha256 = declared.get(DECLARED_TOKENIZER_DIR), declared.get(DECLARED_TOKENIZER_SHA256)
    if settings.tokenizer_dir is not None:
        counter = ModelTokenizer(settings.tokenizer_dir)
        if sha256 and counter.sha256 != sha256:
            log.warning(
                "AIXAUDIT_TOKENIZER_DIR=%s is not the tokenizer the server declares (%s): "
                "token counts may differ from the server's.",
                settings.tokenizer_dir, folder or sha256[:12],
            )  # fmt: skip
        return counter
    if folder and (found := tokenizer_sha256(Path(folder))) and sha256 in (None, found):
        return ModelTokenizer(Path(folder))
    if declared:
        log.warning(
            "The server's tokenizer (%s) is not on this machine: token counts are approximate; "
            "set AIXAUDIT_TOKENIZER_DIR to a copy of it.",
            folder or "undeclared",
        )
    return ApproximateTokenizer()
