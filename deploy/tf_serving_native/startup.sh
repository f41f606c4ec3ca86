#!/bin/bash
# Native TF Serving for brute-force retrieval models: stage the versioned SavedModel from
# MODEL_PATH (gs:// or a local dir; the pushed_model/ parent or the version folder), then run
# tensorflow_model_server with request batching.
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

exec "${TF_SERVING_BIN:-tensorflow_model_server}" \
    --port="${GRPC_PORT:-8500}" \
    --rest_api_port="${PORT:-8501}" \
    --model_name="$name" \
    --model_base_path="$base" \
    --enable_batching=true \
    --batching_parameters_file="${BATCHING_CONFIG:-/etc/tf_serving/batching_config.txt}"
