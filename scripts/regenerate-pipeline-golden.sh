#!/usr/bin/env bash
# Recompiles the pipeline golden files with real TFX in the managed env.
set -euo pipefail
cd "$(dirname "$0")/.."
make pyenv >/dev/null
TRAINYARD_PYTHON="$PWD/.venv-tf/bin/python" cargo test -p trainyard-pipeline --test golden -- --ignored regenerate_golden_files --nocapture
