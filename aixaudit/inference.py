"""Completions from a Triton server: the only module that imports tritonclient.

One client (one gRPC channel or one HTTP connection pool) serves a whole run. A fixed set of
worker coroutines pulls requests from the caller's iterator, so at most `max_in_flight` requests
are outstanding and nothing is queued unboundedly: the server's dynamic batcher sees a steady,
full queue, and a slow consumer slows the producers down (back-pressure).

Timeouts: a request's clock starts when it is sent (never while it waits for a slot here), and
Triton 2.51 computes a request whose client gave up (neither a gRPC deadline nor a cancelled
call stops a queued ensemble request: measured, 4 of 4 computed). So after a timeout the client
reads the server's own measure of its queueing and lets every later attempt wait that much
longer, and each retry's cause is kept with the completion (and stored): a request computed
twice is never silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import numpy as np
import tritonclient.grpc.aio as grpcclient
import tritonclient.http.aio as httpclient
from numpy.typing import NDArray
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from .ensemble import (
    CLIENT_INPUTS,
    DECLARED_KEYS,
    DECLARED_MODEL_ID,
    DECLARED_PROFILE,
    DECLARED_WEIGHTS_SHA256,
)
from .errors import ConfigError, ModelOutputError, ServerError

# Status codes worth another try: the server is busy, restarting or slow, not wrong.
_TRANSIENT = {
    "StatusCode.UNAVAILABLE",
    "StatusCode.DEADLINE_EXCEEDED",
    "StatusCode.RESOURCE_EXHAUSTED",
    "StatusCode.ABORTED",
    "500",
    "502",
    "503",
    "504",
}


# Full-jitter backoff never waits longer than this, however many attempts came before.
BACKOFF_CAP_S = 30.0

# What a request can raise: the server's answer, or the connection (gRPC reports those as
# InferenceServerException too; the HTTP client raises aiohttp's errors), or an answer that is
# no completion.
_REQUEST_ERRORS = (
    InferenceServerException,
    aiohttp.ClientError,
    OSError,
    TimeoutError,
    ModelOutputError,
)
# The one answer a request gets: one text (batch of one, one beam) of bytes.
TEXT_OUTPUT = "text_output"
TEXT_SHAPE = [1, 1]


@dataclass(frozen=True)
class CompletionRequest:
    key: str  # the caller's id for the point; completions come back tagged with it
    prompt: str
    max_tokens: int
    stop_words: tuple[str, ...] = ()


@dataclass(frozen=True)
class Completion:
    key: str
    text: str | None  # None when the request failed for good
    error: str | None
    latency_ms: float  # send to answer, of the successful attempt (or the last failed one)
    attempts: int
    retries: tuple[str, ...] = ()  # why each attempt but the last was tried again
    queued_ms: float = 0.0  # taken by a worker to that attempt's send: earlier tries, backoff


@dataclass(frozen=True)
class Endpoint:
    """Where the server is: `grpc://host:port`, `http://host:port`, or `host:port` + protocol."""

    address: str  # host:port, as tritonclient wants it
    protocol: str  # "grpc" or "http"

    @classmethod
    def parse(cls, url: str, *, default_protocol: str = "grpc") -> Endpoint:
        parts = urlsplit(url if "://" in url else f"{default_protocol}://{url}")
        if parts.scheme not in ("grpc", "http") or not parts.hostname or not parts.port:
            raise ConfigError(
                f"Triton URL {url!r} must look like grpc://host:port or http://host:port."
            )
        return cls(address=f"{parts.hostname}:{parts.port}", protocol=parts.scheme)

    def __str__(self) -> str:
        return f"{self.protocol}://{self.address}"


def is_timeout(error: BaseException) -> bool:
    """The client gave up waiting (the gRPC deadline, or the HTTP wait), not the server."""
    if isinstance(error, InferenceServerException):
        return str(error.status()) == "StatusCode.DEADLINE_EXCEEDED"
    return isinstance(error, TimeoutError)


def is_transient(error: BaseException) -> bool:
    """True for errors a retry can cure: unavailable, deadline, overload, 5xx, lost connection."""
    if isinstance(error, InferenceServerException):
        return str(error.status()) in _TRANSIENT
    return isinstance(error, (aiohttp.ClientConnectionError, OSError, TimeoutError))


class TritonCompleter:
    """Sends completion requests to a Triton ensemble with TensorRT-LLM's interface."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        model: str,
        timeout_s: float = 120.0,
        max_in_flight: int = 8,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        weights_sha256: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.weights_sha256 = weights_sha256  # known here (the embedded model), else from config
        self.model = model
        self.timeout_s = timeout_s
        self.max_in_flight = max_in_flight
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.queue_s = 0.0  # the server's measured queueing, added to timeout_s after a timeout
        self._client: Any = None

    async def __aenter__(self) -> TritonCompleter:
        if self.endpoint.protocol == "grpc":
            self._client = grpcclient.InferenceServerClient(self.endpoint.address)
        else:
            self._client = httpclient.InferenceServerClient(
                self.endpoint.address, conn_limit=self.max_in_flight, conn_timeout=self.timeout_s
            )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._client.close()

    async def check(self) -> None:
        """Server ready, model ready, and it takes our inputs; else ServerError in one sentence."""
        where = f"Triton at {self.endpoint} (model {self.model!r})"
        try:
            if not await self._client.is_server_ready():
                raise ServerError(f"{where} is not ready: the server is up but not ready.")
            if not await self._client.is_model_ready(self.model):
                raise ServerError(f"{where} is not ready: {await self._why_not_ready()}.")
            metadata = await self._metadata()
        except _REQUEST_ERRORS as error:
            raise ServerError(f"{where} cannot be reached: {_first_line(error)}.") from error
        declared = {tensor["name"] for tensor in metadata.get("inputs", [])}
        missing = [name for name in CLIENT_INPUTS if name not in declared]
        if missing:
            raise ServerError(
                f"{where} does not take the inputs aixaudit sends: missing {', '.join(missing)}."
            )

    async def _why_not_ready(self) -> str:
        """The repository index's word on the model: unknown (and what is served), or its state."""
        index = await self._json(self._client.get_model_repository_index)
        models = index.get("models", []) if isinstance(index, dict) else index
        states = {m["name"]: (m.get("state") or "UNAVAILABLE", m.get("reason", "")) for m in models}
        if self.model not in states:
            served = ", ".join(sorted(states)) or "nothing"
            return f"the server has no such model (it serves: {served})"
        state, reason = states[self.model]
        reason = reason.strip().splitlines()[0] if reason.strip() else ""
        return f"the model is {state}" + (f" ({reason})" if reason else "")

    async def _metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = await self._json(self._client.get_model_metadata, self.model)
        return metadata

    async def batch_sizes(self, model: str) -> dict[int, int]:
        """How many batches of each size `model` has executed since the server started: what
        the server's dynamic batcher made of our requests (Triton's statistics API)."""
        statistics = await self._json(self._client.get_inference_statistics, model)
        counts: dict[int, int] = {}
        for model_stats in statistics.get("model_stats", []):
            for batch in model_stats.get("batch_stats", []):
                size = int(batch["batch_size"])
                counts[size] = counts.get(size, 0) + int(batch["compute_infer"].get("count", 0))
        return dict(sorted(counts.items()))

    async def measured_queue_s(self) -> float:
        """How long a request of `model` waits in the server's queues, as the server measures
        it: the mean queue time of the model and of each step of it (an ensemble's request
        waits in every step's queue), from Triton's statistics."""
        config = await self._json(self._client.get_model_config, self.model)
        config = config.get("config", config)  # gRPC wraps it
        steps = config.get("ensemble_scheduling", {}).get("step", [])
        models = {self.model, *(step["model_name"] for step in steps)}
        statistics = await self._json(self._client.get_inference_statistics, "")
        waited = 0.0
        for model_stats in statistics.get("model_stats", []):
            queue = model_stats.get("inference_stats", {}).get("queue", {})
            if model_stats["name"] in models and int(queue.get("count", 0)):
                waited += int(queue["ns"]) / int(queue["count"]) / 1e9
        return waited

    async def identity(self) -> dict[str, Any]:
        """What answers: the model's name and versions from its metadata, the server's URL, and
        what its config declares (`weights_sha256` or `engine_sha256`, `model_id`, the prompt
        profile) where the repository sets it."""
        metadata = await self._metadata()
        parameters = await self._parameters()
        return {
            "model": metadata.get("name", self.model),
            "versions": list(metadata.get("versions", [])),
            "platform": metadata.get("platform", ""),
            "weights_sha256": parameters.get(DECLARED_WEIGHTS_SHA256) or self.weights_sha256,
            "engine_sha256": parameters.get("engine_sha256") or None,
            "model_id": parameters.get(DECLARED_MODEL_ID) or None,
            "profile": parameters.get(DECLARED_PROFILE) or None,
            "server_url": str(self.endpoint),
        }

    async def declared(self) -> dict[str, str]:
        """What the model declares about itself (aixaudit.ensemble.DECLARED_KEYS, the non-empty
        ones), or ServerError when the server cannot be asked."""
        try:
            parameters = await self._parameters()
        except _REQUEST_ERRORS as error:
            where = f"Triton at {self.endpoint} (model {self.model!r})"
            raise ServerError(f"{where} cannot be asked: {_first_line(error)}.") from error
        return {key: parameters[key] for key in DECLARED_KEYS if parameters.get(key)}

    async def _parameters(self) -> dict[str, str]:
        """The string parameters of the model's config."""
        config = await self._json(self._client.get_model_config, self.model)
        config = config.get("config", config)  # gRPC wraps it
        return {
            name: value.get("string_value", "")
            for name, value in config.get("parameters", {}).items()
        }

    async def _json(self, call: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """A metadata call's answer as JSON-like dicts on both protocols (gRPC: as_json)."""
        if self.endpoint.protocol == "grpc":
            return await call(*args, as_json=True)
        return await call(*args)

    async def complete(self, requests: Iterable[CompletionRequest]) -> AsyncIterator[Completion]:
        """Yield a Completion for every request, in completion order, never more than
        `max_in_flight` requests outstanding."""
        pending: Iterator[CompletionRequest] = iter(requests)
        results: asyncio.Queue[Completion | Exception | None] = asyncio.Queue(
            maxsize=self.max_in_flight
        )

        async def worker() -> None:
            try:
                for request in pending:  # the shared iterator hands each request to one worker
                    await results.put(await self._complete_one(request))
            except Exception as error:  # the caller's iterator failed: raise it to the caller
                await results.put(error)
                return
            await results.put(None)

        workers = [asyncio.create_task(worker()) for _ in range(self.max_in_flight)]
        try:
            finished = 0
            while finished < len(workers):
                item = await results.get()
                if item is None:
                    finished += 1
                elif isinstance(item, Exception):
                    raise item
                else:
                    yield item
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _complete_one(self, request: CompletionRequest) -> Completion:
        retries: list[str] = []
        taken = time.perf_counter()
        while True:
            started = time.perf_counter()
            queued = (started - taken) * 1000
            try:
                text = await self._infer(request, self.timeout_s + self.queue_s)
                latency = (time.perf_counter() - started) * 1000
                return Completion(
                    request.key, text, None, latency, len(retries) + 1, (*retries,), queued
                )
            except _REQUEST_ERRORS as error:
                latency = (time.perf_counter() - started) * 1000
                cause = _first_line(error)
                if not is_transient(error) or len(retries) >= self.max_retries:
                    return Completion(
                        request.key, None, cause, latency, len(retries) + 1, (*retries,), queued
                    )
                retries.append(cause)
                if is_timeout(error):
                    await self._follow_the_queue()
                # Full jitter: spreads retries of many in-flight requests over the window. The
                # request keeps its slot meanwhile, so retries never add to what is in flight.
                window = min(BACKOFF_CAP_S, self.backoff_s * 2 ** (len(retries) - 1))
                await asyncio.sleep(random.uniform(0, window))

    async def _follow_the_queue(self) -> None:
        """Raise the timeouts of later attempts to the server's measured queueing (kept as it
        is when the statistics cannot be read)."""
        with contextlib.suppress(*_REQUEST_ERRORS, KeyError, ValueError):
            self.queue_s = max(self.queue_s, await self.measured_queue_s())

    async def _infer(self, request: CompletionRequest, timeout_s: float) -> str:
        module = grpcclient if self.endpoint.protocol == "grpc" else httpclient
        inputs = [
            _tensor(module, "text_input", np.array([[request.prompt.encode()]], dtype=object)),
            _tensor(module, "max_tokens", np.array([[request.max_tokens]], dtype=np.int32)),
        ]
        if request.stop_words:
            words = np.array([[w.encode() for w in request.stop_words]], dtype=object)
            inputs.append(_tensor(module, "stop_words", words))
        outputs = [module.InferRequestedOutput(TEXT_OUTPUT)]
        if self.endpoint.protocol == "grpc":
            result = await self._client.infer(
                self.model, inputs, outputs=outputs, client_timeout=timeout_s
            )
        else:
            result = await asyncio.wait_for(
                self._client.infer(self.model, inputs, outputs=outputs), timeout_s
            )
        return _completion_text(result, self.endpoint.protocol)


def _completion_text(result: Any, protocol: str) -> str:
    """The answer's text, or ModelOutputError when it is no completion: a tensor of another
    shape or type, or bytes that are not UTF-8. Empty, over-long and echoed texts are
    completions: stored and scored (as the failures they are)."""
    output = result.get_output(TEXT_OUTPUT)
    if output is None:
        raise ModelOutputError(f"The answer has no {TEXT_OUTPUT}.")
    if protocol == "grpc":
        datatype, shape = output.datatype, list(output.shape)
    else:
        datatype, shape = output["datatype"], list(output["shape"])
    if datatype != "BYTES" or shape != TEXT_SHAPE:
        raise ModelOutputError(
            f"The answer's {TEXT_OUTPUT} is {datatype} {shape}, not BYTES {TEXT_SHAPE}."
        )
    raw = result.as_numpy(TEXT_OUTPUT).reshape(-1)[0]
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError as error:
        reason = f"{error.reason} at byte {error.start}"
        raise ModelOutputError(f"The answer is not UTF-8 ({reason}).") from None


def _tensor(module: Any, name: str, value: NDArray[Any]) -> Any:
    tensor = module.InferInput(name, list(value.shape), np_to_triton_dtype(value.dtype))
    tensor.set_data_from_numpy(value)
    return tensor


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
