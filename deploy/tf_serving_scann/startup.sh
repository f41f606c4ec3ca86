#!/bin/bash
# ScaNN retrieval models: stage the versioned SavedModel from MODEL_PATH (gs:// or a local dir;
# the pushed_model/ parent or the version folder), then serve it with trainyard-serve, which
# registers ScaNN's TensorFlow ops before loading (standard TF Serving fails with
# "Op type not registered 'Scann>ScannSearchBatched'") and batches requests like TF Serving.
set -euo pipefail

# shellcheck source=../lib/model_path.sh
. "${TRAINYARD_MODEL_PATH_LIB:-/usr/local/lib/trainyard/model_path.sh}"

# On a Vertex AI endpoint the registered version's artifactUri arrives as AIP_STORAGE_URI and
# the container port as AIP_HTTP_PORT (Vertex's custom-container contract).
MODEL_PATH=${MODEL_PATH:-${AIP_STORAGE_URI:-}}
PORT=${PORT:-${AIP_HTTP_PORT:-8501}}
if [ -z "${MODEL_PATH:-}" ]; then
    echo "ERROR: MODEL_PATH (or AIP_STORAGE_URI) environment variable not set" >&2
    exit 1
fi
name=${MODEL_NAME:-recommender}
base=${MODEL_BASE_PATH:-/models}/$name

echo "Fetching model from $MODEL_PATH..." >&2
stage_model "$MODEL_PATH" "$base" >/dev/null

# extra flags for trainyard-serve, e.g. SERVE_EXTRA_ARGS="--ready-file /tmp/ready.json"
read -r -a extra <<<"${SERVE_EXTRA_ARGS:-}"
exec "${TRAINYARD_SERVE_BIN:-trainyard-serve}" \
    --model "$base" \
    --name "$name" \
    --host "${HOST:-0.0.0.0}" \
    --port "${PORT:-8501}" \
    --max-batch-size "${MAX_BATCH_SIZE:-64}" \
    --batch-timeout-micros "${BATCH_TIMEOUT_MICROS:-10000}" \
    --log-format "${LOG_FORMAT:-json}" \
    "${extra[@]}"
