#!/bin/bash
# Tests of the serving images' startup logic, without Docker:
#   - the model-path rule (newest numeric version folder holding saved_model.pb; bug 8) on a
#     local dir and on gs:// (gsutil replaced by a stub that maps gs://bucket to a local dir)
#   - tf_serving_native/startup.sh stages the right version and starts the server with batching
#   - tf_serving_scann/startup.sh serves a real ScaNN model with trainyard-serve, when
#     TRAINYARD_SERVE_BIN and TRAINYARD_SERVE_TEST_MODELS are set (make test-serve sets them)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DEPLOY=$(cd "$HERE/.." && pwd)
export TRAINYARD_MODEL_PATH_LIB=$DEPLOY/lib/model_path.sh
# shellcheck source=../lib/model_path.sh
. "$TRAINYARD_MODEL_PATH_LIB"

TMP=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

failures=0
check() { # check NAME EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then
        echo "ok   $1"
    else
        echo "FAIL $1: expected '$2', got '$3'"
        failures=$((failures + 1))
    fi
}

# pushed_model/ with versions 1, 2, 10 (10 without saved_model.pb: an interrupted push),
# a non-numeric folder and a stray file
pushed=$TMP/bucket/runs/17/pushed_model
for v in 1 2 10 latest; do mkdir -p "$pushed/$v/variables"; done
for v in 1 2 latest; do echo "model $v" >"$pushed/$v/saved_model.pb"; done
echo "weights 2" >"$pushed/2/variables/variables.index"
touch "$pushed/README"

local_pick=$(find "$pushed" -mindepth 1 -maxdepth 2 -name saved_model.pb -type f | pick_model_dir "$pushed")
check "local: newest version holding saved_model.pb" "$pushed/2" "$local_pick"
check "local: the version folder itself" "$pushed/1" \
    "$(find "$pushed/1" -maxdepth 2 -name saved_model.pb | pick_model_dir "$pushed/1")"
check "version numbers compare as numbers" "$pushed/10" \
    "$(printf '%s\n' "$pushed/9/saved_model.pb" "$pushed/10/saved_model.pb" | pick_model_dir "$pushed")"
check "version_of" "1768842986" "$(version_of "$pushed/1768842986/")"
if printf '%s\n' "$pushed/10/variables" | pick_model_dir "$pushed" 2>/dev/null; then
    check "no SavedModel fails" "failure" "success"
else
    check "no SavedModel fails" "failure" "failure"
fi

# gs://: a stub gsutil on PATH serving gs://bucket from $TMP/bucket
mkdir -p "$TMP/bin"
cat >"$TMP/bin/gsutil" <<STUB
#!/bin/bash
# stub: gsutil [-m] [-q] ls PATTERN... | cp -r SRC/* DEST
root="$TMP/bucket"
args=()
for a in "\$@"; do case \$a in -m|-q|-r) ;; *) args+=("\$a") ;; esac; done
case \${args[0]} in
  # like gsutil: exit 1 when any URL matches nothing ("One or more URLs matched no objects")
  ls) status=0
      for p in "\${args[@]:1}"; do
        found=0
        for f in \${p/gs:\/\/bucket/\$root}; do [ -e "\$f" ] && { echo "\${f/\$root/gs://bucket}"; found=1; }; done
        [ \$found = 1 ] || { echo "CommandException: One or more URLs matched no objects." >&2; status=1; }
      done
      exit \$status ;;
  cp) src=\${args[1]/gs:\/\/bucket/\$root}; cp -r \$src "\${args[2]}" ;;
esac
STUB
chmod +x "$TMP/bin/gsutil"
export PATH=$TMP/bin:$PATH
gs_pick=$({ gsutil ls "gs://bucket/runs/17/pushed_model/saved_model.pb" "gs://bucket/runs/17/pushed_model/*/saved_model.pb" || true; } 2>/dev/null |
    pick_model_dir gs://bucket/runs/17/pushed_model)
check "gs: newest version holding saved_model.pb" "gs://bucket/runs/17/pushed_model/2" "$gs_pick"

# native startup.sh: stages version 2 only, runs the model server with batching
cat >"$TMP/bin/fake_model_server" <<'STUB'
#!/bin/bash
printf '%s\n' "$@" >"$FAKE_ARGS"
STUB
chmod +x "$TMP/bin/fake_model_server"
for src in "$pushed" "gs://bucket/runs/17/pushed_model/"; do
    rm -rf "$TMP/models"
    FAKE_ARGS=$TMP/args MODEL_PATH=$src MODEL_BASE_PATH=$TMP/models MODEL_NAME=recs PORT=9000 \
        TF_SERVING_BIN=fake_model_server bash "$DEPLOY/tf_serving_native/startup.sh" 2>/dev/null
    check "native($src): staged versions" "2" "$(ls "$TMP/models/recs")"
    check "native($src): staged the version's files" "weights 2" \
        "$(cat "$TMP/models/recs/2/variables/variables.index")"
    grep -qx -- "--model_base_path=$TMP/models/recs" "$TMP/args" && r=yes || r=no
    check "native($src): model_base_path" yes "$r"
    grep -qx -- "--rest_api_port=9000" "$TMP/args" && r=yes || r=no
    check "native($src): rest port" yes "$r"
    grep -qx -- "--enable_batching=true" "$TMP/args" && r=yes || r=no
    check "native($src): batching" yes "$r"
done
# on a Vertex AI endpoint: the model from AIP_STORAGE_URI (the registered version folder), the
# port from AIP_HTTP_PORT
rm -rf "$TMP/models"
(unset MODEL_PATH PORT; FAKE_ARGS=$TMP/args AIP_STORAGE_URI=gs://bucket/runs/17/pushed_model/2 \
    AIP_HTTP_PORT=8080 MODEL_BASE_PATH=$TMP/models TF_SERVING_BIN=fake_model_server \
    bash "$DEPLOY/tf_serving_native/startup.sh" 2>/dev/null)
check "native(vertex): staged the registered version" "2" "$(ls "$TMP/models/recommender")"
grep -qx -- "--rest_api_port=8080" "$TMP/args" && r=yes || r=no
check "native(vertex): AIP_HTTP_PORT" yes "$r"
if MODEL_PATH='' bash "$DEPLOY/tf_serving_native/startup.sh" 2>/dev/null; then r=started; else r=refused; fi
check "native: no MODEL_PATH is refused" refused "$r"

# scann startup.sh with the real server and a real ScaNN model
if [ -n "${TRAINYARD_SERVE_BIN:-}" ] && [ -n "${TRAINYARD_SERVE_TEST_MODELS:-}" ]; then
    ready=$TMP/ready.json
    MODEL_PATH=$TRAINYARD_SERVE_TEST_MODELS/scann MODEL_BASE_PATH=$TMP/scann-models HOST=127.0.0.1 \
        PORT=0 LOG_FORMAT=text SERVE_EXTRA_ARGS="--ready-file $ready" \
        bash "$DEPLOY/tf_serving_scann/startup.sh" 2>"$TMP/scann.log" &
    SERVER_PID=$!
    for _ in $(seq 1 600); do
        [ -f "$ready" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -f "$ready" ]; then
        url=$(sed -n 's/.*"url": *"\([^"]*\)".*/\1/p' "$ready")
        body='{"instances":[{"customer_id":"C0001","city":"Warsaw","revenue":10.0,"visits":[1]}]}'
        answer=$(curl -sf -X POST -d "$body" "$url/v1/models/recommender:predict" || true)
        case $answer in *'"product_ids":["PROD-'*) r=yes ;; *) r="no: $answer" ;; esac
        check "scann: serves original product ids" yes "$r"
        kill -TERM "$SERVER_PID"
        if wait "$SERVER_PID"; then r=0; else r=$?; fi
        SERVER_PID=
        check "scann: exit status after SIGTERM" 0 "$r"
    else
        check "scann: server ready" yes "no ($(tail -5 "$TMP/scann.log"))"
    fi
else
    echo "skip scann startup with the real server (TRAINYARD_SERVE_BIN / TRAINYARD_SERVE_TEST_MODELS not set)"
fi

if [ "$failures" -ne 0 ]; then
    echo "$failures startup check(s) failed"
    exit 1
fi
echo "startup tests passed"
