#!/usr/bin/env bash
# make test-api: serve a temp project seeded with runs and schedules, then let schemathesis
# fuzz every operation of the served OpenAPI document; any 5xx (or a handler panic) fails.
# usage: api_fuzz.sh VENV TRAINYARD_BIN    (env: API_FUZZ_EXAMPLES, API_FUZZ_SEED)
set -euo pipefail

venv=$1
bin=$2
examples=${API_FUZZ_EXAMPLES:-25}
seed=${API_FUZZ_SEED:-20260127}
work=$(mktemp -d "${TMPDIR:-/tmp}/trainyard-api-fuzz.XXXXXX")
server_pid=

cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid"
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

"$bin" init "$work/project" >/dev/null
# One bearer value for both schemes: schemathesis sends one Authorization header to every
# operation, the management ones (API token) and the webhooks (callback secret) alike.
token=fuzz-secret
TRAINYARD_API_TOKEN=$token TRAINYARD_LOG=warn "$bin" --project "$work/project" serve-api --port 0 \
    --webhook-secret fuzz-secret >"$work/server.out" 2>"$work/server.err" &
server_pid=$!

base=
for _ in $(seq 1 100); do
    base=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/server.out" 2>/dev/null | head -1 || true)
    [ -n "$base" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.err" >&2; exit 1; }
    sleep 0.1
done
[ -n "$base" ] || { echo "serve-api did not start" >&2; exit 1; }
echo "api-fuzz: serving on $base"

# Seed: runs in several states, schedules from a run and from the wizard, one fire.
call() {
    local method=$1 path=$2 body=${3:-}
    local args=(-sS -o "$work/resp.json" -w '%{http_code}' -X "$method" "$base$path"
        -H "authorization: Bearer $token" -H 'content-type: application/json')
    [ -n "$body" ] && args+=(-d "$body")
    local code
    code=$(curl "${args[@]}")
    case $code in
        2??) jq -c . "$work/resp.json" ;;
        *) echo "seed: $method $path -> $code: $(cat "$work/resp.json")" >&2; exit 1 ;;
    esac
}
run_id() { call POST /api/models/default/training-runs/ "{\"name\": \"$1\"}" | jq .training_run.id; }
r1=$(run_id product-retrieval)
r2=$(run_id product-retrieval)
r3=$(run_id weekly-model)
run_id other-model >/dev/null
call POST "/api/training-runs/$r1/cancel/" >/dev/null
call POST "/api/training-runs/$r1/rerun/" >/dev/null
call POST /api/training/schedules/from-run/ \
    "{\"source_training_run_id\": $r3, \"name\": \"Weekly\", \"schedule_type\": \"weekly\",
      \"schedule_time\": \"09:00\", \"schedule_day_of_week\": 0, \"schedule_timezone\": \"Europe/Warsaw\"}" \
    | jq -r '.schedule.id' >"$work/sid"
call POST /api/training/schedules/ \
    '{"name": "wizard-model", "schedule_type": "daily", "schedule_time": "02:30"}' >/dev/null
call POST "/api/training/schedules/$(cat "$work/sid")/trigger/" >/dev/null
echo "api-fuzz: seeded runs $r1 $r2 $r3 and two schedules"

# Ids of the seeded records (runs, schedules and models all start at 1): path and body ids
# come from them most of the time, so the fuzzer reaches real records, not only 404s.
cat >"$work/schemathesis.toml" <<'TOML'
[dictionaries.seeded]
values = [1, 2, 3, 4, 5, 6]

[parameters]
"path.id" = { dictionary = "seeded", probability = 0.8 }
"query.source_run_id" = { dictionary = "seeded", probability = 0.8 }
"query.registered_model_id" = { dictionary = "seeded", probability = 0.5 }
"body.source_training_run_id" = { dictionary = "seeded", probability = 0.8 }
"body.registered_model_id" = { dictionary = "seeded", probability = 0.8 }
TOML

report_dir=$(realpath -m "${API_FUZZ_REPORT_DIR:-target/api-fuzz}")
venv=$(realpath "$venv")
status=0
# From the temp dir: schemathesis keeps state in ./.schemathesis.
# A hung fuzzer fails the target instead of holding `make test`.
(cd "$work" && timeout "${API_FUZZ_TIMEOUT:-600}" "$venv/bin/st" --config-file "$work/schemathesis.toml" run "$base/openapi.json" \
    --checks not_a_server_error \
    --header "Authorization: Bearer $token" \
    --header "Content-Type: application/json" \
    --max-examples "$examples" \
    --seed "$seed" \
    --workers 2 \
    --request-timeout 20 \
    --generation-database none \
    --no-color \
    --report "${API_FUZZ_REPORTS:-junit}" --report-dir "$report_dir") || status=$?

if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "api-fuzz: the server died" >&2
    status=1
fi
if grep -q 'panicked' "$work/server.err"; then
    echo "api-fuzz: a handler panicked:" >&2
    grep -A3 'panicked' "$work/server.err" >&2
    status=1
fi
if [ "$status" -ne 0 ]; then
    echo "api-fuzz: FAILED (server log tail below)" >&2
    tail -20 "$work/server.err" >&2
fi
exit "$status"
