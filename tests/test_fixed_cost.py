from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tokenizers import Tokenizer

from aixaudit.ensemble import ENSEMBLE_NAME
from aixaudit.errors import ConfigError
from aixaudit.inference import CompletionRequest, Endpoint, TritonCompleter
from aixaudit.local_triton import LocalTriton
from aixaudit.model_repo import (
    CPU_REPO,
    TRTLLM_MODELS,
    check_ensemble_wiring,
    read_config,
    render_fixed_cost,
    tensor_specs,
)

# --- rendering (no server) -------------------------------------------------------------------


def test_render_fixed_cost_writes_a_wired_repository_with_one_batch_size(tmp_path: Path) -> None:
    repo = render_fixed_cost(tmp_path / "repo", delay_ms=12.5, max_batch_size=4, instances=2)
    assert sorted(p.name for p in repo.iterdir()) == sorted(TRTLLM_MODELS)
    configs = {model: read_config(repo / model / "config.pbtxt") for model in TRTLLM_MODELS}
    assert {model: config.max_batch_size for model, config in configs.items()} == dict.fromkeys(
        TRTLLM_MODELS, 4
    )
    core = configs["tensorrt_llm"]
    assert core.parameters["delay_ms"].string_value == "12.5"
    assert [group.count for group in core.instance_group] == [2]
    # The same tensors as the CPU stand-in, so the ensemble is unchanged.
    cpu = read_config(CPU_REPO / "tensorrt_llm" / "config.pbtxt")
    assert tensor_specs(core.input) == tensor_specs(cpu.input)
    assert tensor_specs(core.output) == tensor_specs(cpu.output)
    assert check_ensemble_wiring(repo) == []
    for model in ("preprocessing", "tensorrt_llm", "postprocessing"):
        assert (repo / model / "1" / "model.py").is_file()
    assert (repo / ENSEMBLE_NAME / "1").is_dir()
    assert not list(repo.rglob("__pycache__"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"delay_ms": 0}, "more than 0 ms"),
        ({"delay_ms": 5, "max_batch_size": 0}, "max batch size"),
        ({"delay_ms": 5, "instances": 0}, "instance count"),
    ],
)
def test_render_fixed_cost_rejects_impossible_settings(
    tmp_path: Path, options: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        render_fixed_cost(tmp_path / "repo", **options)
    assert not (tmp_path / "repo").exists()


def test_render_fixed_cost_replaces_a_repository_only_when_forced(tmp_path: Path) -> None:
    repo = render_fixed_cost(tmp_path / "repo", delay_ms=5)
    with pytest.raises(ConfigError, match="not empty"):
        render_fixed_cost(repo, delay_ms=7)
    render_fixed_cost(repo, delay_ms=7, force=True)
    config = read_config(repo / "tensorrt_llm" / "config.pbtxt")
    assert config.parameters["delay_ms"].string_value == "7"


# --- serving ----------------------------------------------------------------------------------


def _complete(server: LocalTriton, prompt: str, max_tokens: int) -> str:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    text = grpcclient.InferInput("text_input", [1, 1], "BYTES")
    text.set_data_from_numpy(np.array([[prompt.encode()]], dtype=np.object_))
    budget = grpcclient.InferInput("max_tokens", [1, 1], "INT32")
    budget.set_data_from_numpy(np.array([[max_tokens]], dtype=np.int32))
    try:
        result = client.infer(ENSEMBLE_NAME, [text, budget])
    finally:
        client.close()
    return b"".join(result.as_numpy("text_output").reshape(-1)).decode()


@pytest.mark.triton
def test_the_answer_is_the_prompts_last_tokens(
    fixed_cost_server: LocalTriton, cpu_model_dir: Path
) -> None:
    tokenizer = Tokenizer.from_file(str(cpu_model_dir / "tokenizer.json"))
    prompt = "def add(a, b):\n    return a + b"
    # Tokens ... "Ġreturn", "Ġa", "Ġ+", "Ġb": the last four.
    assert _complete(fixed_cost_server, prompt, 4) == " return a + b"
    assert _complete(fixed_cost_server, prompt, 4) == " return a + b"  # same prompt, same answer
    assert _complete(fixed_cost_server, prompt, 1) == " b"  # request_output_len is respected
    other = "import os\n\ndef read(path):\n    with open(path) as f:"
    ids = tokenizer.encode(other).ids
    assert _complete(fixed_cost_server, other, 5) == tokenizer.decode(ids[-5:])
    # A budget beyond the prompt gives the whole prompt (the BOS the ensemble adds is special).
    assert _complete(fixed_cost_server, other, 500) == other


@pytest.mark.triton
def test_statistics_show_the_batches_the_server_formed(fixed_cost_server: LocalTriton) -> None:
    prompts = [f"x_{i} = {i} * y\n" for i in range(24)]
    requests = [CompletionRequest(f"k{i}", prompt, 64) for i, prompt in enumerate(prompts)]
    completer = TritonCompleter(
        Endpoint.parse(fixed_cost_server.grpc_url), model=ENSEMBLE_NAME, max_in_flight=24
    )

    async def run() -> tuple[Counter[int], list[str]]:
        async with completer:
            before = Counter(await completer.batch_sizes("tensorrt_llm"))
            texts = [c.text or "" async for c in completer.complete(requests)]
            return Counter(await completer.batch_sizes("tensorrt_llm")) - before, texts

    batches, texts = asyncio.run(run())
    assert sorted(texts) == sorted(prompts)  # budgets beyond the prompts: the prompts back
    assert sum(size * count for size, count in batches.items()) == 24  # every request once
    assert max(batches) <= 8  # the model's max batch size
    assert max(batches) > 1  # 24 requests at once, 50 ms a batch: the batcher combined them
