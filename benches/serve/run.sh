#!/bin/bash
# Serving benchmark (not a test): trainyard-serve vs a Flask + gunicorn TF-Serving-style server
# on the same 100k-product brute-force (and ScaNN) SavedModels and the same wrk requests:
# p50/p99 at concurrency 1 and 16, req/s, the ratios of DESIGN.md's targets, ScaNN recall@100.
#   bash benches/serve/run.sh [SECS]      (make bench-serve; SECS per measurement, default 10)
# Also the in-process limit (examples/serve_limit.rs: MatMul + top k on both cores, no HTTP)
# and trainyard-serve's c=16 req/s as a fraction of it. QUIET_WAIT_S (default 120): how long
# each measurement waits for the machine to go quiet (other processes skew a 2-core machine).
# Set-up (idempotent): wrk from apt, flask + gunicorn into target/serve-bench/pylib (pip
# --target, the managed env stays unchanged), the models, the release build.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"
PY=${TRAINYARD_PYTHON:-$ROOT/.venv-tf/bin/python}
WORK=$ROOT/target/serve-bench
SECS=${1:-10}
mkdir -p "$WORK"

if ! command -v wrk >/dev/null; then
    apt-get update -q && apt-get install -y -q wrk
fi
stamp=$WORK/pylib/.stamp-$(sha256sum "$HERE/requirements.txt" | cut -c1-16)
if [ ! -f "$stamp" ]; then
    rm -rf "$WORK/pylib"
    "$PY" -m pip install -q --disable-pip-version-check --target "$WORK/pylib" -r "$HERE/requirements.txt"
    touch "$stamp"
fi
stamp=$WORK/models/.stamp-$(sha256sum scripts/serve-export-models.py | cut -c1-16)
if [ ! -f "$stamp" ]; then
    rm -rf "$WORK/models"
    TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2 "$PY" scripts/serve-export-models.py bench "$WORK/models" 100000
    touch "$stamp"
fi
cargo build --release -q -p trainyard-serve --bin trainyard-serve --example serve_limit

"$PY" "$HERE/driver.py" --bin "$ROOT/target/release/trainyard-serve" --models "$WORK/models" \
    --pylib "$WORK/pylib" --out "$WORK/results.json" --secs "$SECS" \
    --limit-bin "$ROOT/target/release/examples/serve_limit" --quiet-wait "${QUIET_WAIT_S:-120}"
