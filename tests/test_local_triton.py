from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from proc_walk import group_alive
from tritonclient.utils import InferenceServerException

from aixaudit.ensemble import ENSEMBLE_INPUTS, ENSEMBLE_NAME, ENSEMBLE_OUTPUTS
from aixaudit.errors import ConfigError, ServerStartError
from aixaudit.local_triton import (
    MODEL_DIR_ENV,
    LocalTriton,
    _backend_dir,
    _bundled_server,
    _free_ports,
    _server_env,
    cpu_repository,
)

PROMPTS = (
    "def add(a, b):\n    return",
    "import os\n\ndef read_file(path):\n    with open(",
    "for i in range(10):\n    ",
    "class Stack:\n    def __init__(self):\n        self.items =",
    "def is_even(n):\n    return n %",
    "public static int max(int a, int b) {\n    return",
    "function greet(name) {\n  console.log(",
    "fn main() {\n    let v = vec![1, 2, 3];\n    for x in",
)

ECHO_CONFIG = """
name: "echo"
backend: "python"
max_batch_size: 8
input [ { name: "x" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "y" data_type: TYPE_INT32 dims: [ 1 ] } ]
"""
ECHO_MODEL = """
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        return [
            pb_utils.InferenceResponse(
                [pb_utils.Tensor("y", pb_utils.get_input_tensor_by_name(r, "x").as_numpy())]
            )
            for r in requests
        ]
"""
BROKEN_MODEL = """
class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError("broken on purpose")
"""


def _inputs(client: Any, text: str, max_tokens: int, stop_words: list[str] | None) -> list[Any]:
    """Ensemble inputs in the shape aixaudit's client sends: batch of one."""
    prompt = client.InferInput("text_input", [1, 1], "BYTES")
    prompt.set_data_from_numpy(np.array([[text.encode()]], dtype=np.object_))
    budget = client.InferInput("max_tokens", [1, 1], "INT32")
    budget.set_data_from_numpy(np.array([[max_tokens]], dtype=np.int32))
    inputs = [prompt, budget]
    if stop_words:
        stops = client.InferInput("stop_words", [1, len(stop_words)], "BYTES")
        stops.set_data_from_numpy(np.array([[w.encode() for w in stop_words]], dtype=np.object_))
        inputs.append(stops)
    return inputs


def _text(result: Any) -> str:
    output = result.as_numpy("text_output")
    assert output.shape == (1, 1)
    return output[0, 0].decode()


@contextmanager
def _http(server: LocalTriton, concurrency: int = 1) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(server.http_url, concurrency=concurrency)
    try:
        yield client
    finally:
        client.close()


def _complete(
    server: LocalTriton, text: str, *, max_tokens: int = 8, stop_words: list[str] | None = None
) -> str:
    with _http(server) as client:
        return _text(client.infer(ENSEMBLE_NAME, _inputs(httpclient, text, max_tokens, stop_words)))


# -- launcher pieces (fast) -------------------------------------------------------------------


def test_free_ports_are_three_different_ports() -> None:
    ports = _free_ports()
    assert len(set(ports)) == 3
    assert all(1024 <= port <= 65535 for port in ports)


def test_server_env_runs_this_python_and_its_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LD_LIBRARY_PATH", "/old/lib")
    monkeypatch.setenv("PATH", "/usr/bin")
    env = _server_env(Path("/bundled/libs"), {"EXTRA": "1"})
    assert env["PATH"].split(os.pathsep) == [str(Path(sys.executable).parent), "/usr/bin"]
    libs = env["LD_LIBRARY_PATH"].split(os.pathsep)
    assert libs[1:] == ["/bundled/libs", "/old/lib"]
    assert list(
        Path(libs[0]).glob(f"libpython{sys.version_info.major}.{sys.version_info.minor}*.so*")
    )
    assert env["EXTRA"] == "1"
    assert env["HF_HUB_OFFLINE"] == "1"


def test_backend_dir_links_the_backend_and_copies_the_stub(tmp_path: Path) -> None:
    _, source, stub, _ = _bundled_server()
    backends = _backend_dir(tmp_path, source, stub)
    python = backends / "python"
    assert sorted(p.name for p in python.iterdir()) == [
        "libtriton_python.so",
        "triton_python_backend_stub",
        "triton_python_backend_utils.py",
    ]
    assert (python / "libtriton_python.so").resolve() == source / "libtriton_python.so"
    assert not (python / stub.name).is_symlink()
    assert os.access(python / stub.name, os.X_OK)


def test_urls_need_a_started_server() -> None:
    with pytest.raises(ConfigError, match="not been started"):
        _ = LocalTriton().http_url


def test_missing_repository_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        LocalTriton().start(tmp_path / "nowhere")


def test_stop_before_start_does_nothing() -> None:
    server = LocalTriton()
    server.stop()
    assert not server.running
    assert server.pid is None


def test_cpu_repository_holds_the_four_models() -> None:
    repo = cpu_repository()
    for model in ("preprocessing", "tensorrt_llm", "postprocessing"):
        assert (repo / model / "config.pbtxt").is_file()
        assert (repo / model / "1" / "model.py").is_file()
    assert (repo / ENSEMBLE_NAME / "1").is_dir()


# -- a real server ----------------------------------------------------------------------------


@pytest.mark.triton
def test_stop_after_a_hard_kill_leaves_nothing(tmp_path: Path) -> None:
    """stop_timeout_s=0 forces the SIGKILL path: no process and no /dev/shm region may survive."""
    (tmp_path / "repo" / "echo" / "1").mkdir(parents=True)
    (tmp_path / "repo" / "echo" / "config.pbtxt").write_text(ECHO_CONFIG)
    (tmp_path / "repo" / "echo" / "1" / "model.py").write_text(ECHO_MODEL)
    server = LocalTriton(log_dir=tmp_path / "logs", stop_timeout_s=0)
    with server.start(tmp_path / "repo"):
        pid = server.pid
        assert pid is not None
        client = grpcclient.InferenceServerClient(server.grpc_url)
        x = grpcclient.InferInput("x", [1, 1], "INT32")
        x.set_data_from_numpy(np.array([[41]], dtype=np.int32))
        assert client.infer("echo", [x]).as_numpy("y").tolist() == [[41]]
        client.close()
        assert len(group_alive(pid)) >= 2  # the server and its stub
        assert list(Path("/dev/shm").glob(f"{server.shm_prefix}*"))
    assert not server.running
    assert group_alive(pid) == []
    assert list(Path("/dev/shm").glob(f"{server.shm_prefix}*")) == []
    assert list(tmp_path.glob("logs/tritonserver-*.log"))


@pytest.mark.triton
def test_broken_repository_fails_fast_and_leaves_nothing(
    tmp_path: Path, cpu_model_dir: Path
) -> None:
    repo = shutil.copytree(cpu_repository(), tmp_path / "repo")
    (repo / "postprocessing" / "1" / "model.py").write_text(BROKEN_MODEL)
    server = LocalTriton(log_dir=tmp_path / "logs", startup_timeout_s=240)
    with pytest.raises(ServerStartError, match="exited with code") as failure:
        server.start(repo, env={MODEL_DIR_ENV: str(cpu_model_dir)})
    assert "broken on purpose" in str(failure.value)
    assert not server.running
    assert server.shm_prefix
    assert list(Path("/dev/shm").glob(f"{server.shm_prefix}*")) == []


@pytest.mark.triton
def test_metadata_declares_the_ensemble_interface(triton_server: LocalTriton) -> None:
    with _http(triton_server) as client:
        metadata = client.get_model_metadata(ENSEMBLE_NAME)
    inputs = {t["name"]: (t["datatype"], t["shape"]) for t in metadata["inputs"]}
    outputs = {t["name"]: (t["datatype"], t["shape"]) for t in metadata["outputs"]}
    # max_batch_size > 0, so every shape starts with the batch dimension -1.
    assert inputs == {s.name: (s.wire_type, [-1, *s.dims]) for s in ENSEMBLE_INPUTS}
    assert outputs == {s.name: (s.wire_type, [-1, *s.dims]) for s in ENSEMBLE_OUTPUTS}


@pytest.mark.triton
def test_grpc_and_http_give_the_same_text(triton_server: LocalTriton) -> None:
    client = grpcclient.InferenceServerClient(triton_server.grpc_url)
    try:
        over_grpc = _text(client.infer(ENSEMBLE_NAME, _inputs(grpcclient, PROMPTS[0], 6, None)))
    finally:
        client.close()
    over_http = _complete(triton_server, PROMPTS[0], max_tokens=6)
    assert over_grpc.strip()
    assert PROMPTS[0] not in over_grpc  # generated tokens only, never the prompt
    assert over_http == over_grpc


@pytest.mark.triton
def test_greedy_completion_is_deterministic(triton_server: LocalTriton) -> None:
    first = _complete(triton_server, PROMPTS[1])
    assert first.strip()
    assert _complete(triton_server, PROMPTS[1]) == first


@pytest.mark.triton
def test_concurrent_requests_are_batched_and_match_sequential(triton_server: LocalTriton) -> None:
    sequential = [_complete(triton_server, prompt) for prompt in PROMPTS]
    with _http(triton_server, concurrency=len(PROMPTS)) as client:
        pending = [
            client.async_infer(ENSEMBLE_NAME, _inputs(httpclient, prompt, 8, None))
            for prompt in PROMPTS
        ]
        concurrent = [_text(request.get_result()) for request in pending]
        stats = client.get_inference_statistics("tensorrt_llm")
    assert concurrent == sequential
    batch_sizes = {int(b["batch_size"]) for b in stats["model_stats"][0]["batch_stats"]}
    assert max(batch_sizes) > 1


@pytest.mark.triton
def test_stop_word_ends_the_completion(triton_server: LocalTriton) -> None:
    full = _complete(triton_server, PROMPTS[0])
    word = full.split()[1]  # a word the model generates (" +" for this prompt)
    stopped = _complete(triton_server, PROMPTS[0], stop_words=[f" {word}"])
    assert stopped == full[: full.index(f" {word}") + len(word) + 1]


@pytest.mark.triton
@pytest.mark.parametrize("max_tokens", [0, 100_000])
def test_bad_max_tokens_is_a_clean_error(triton_server: LocalTriton, max_tokens: int) -> None:
    with pytest.raises(InferenceServerException, match=r"request_output_len must be 1\.\."):
        _complete(triton_server, PROMPTS[0], max_tokens=max_tokens)
