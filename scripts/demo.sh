#!/usr/bin/env bash
# A scripted tour of trainyard on embedded defaults (SQLite in ./demo-project).
# The pipeline callbacks below are the ones a pipeline sends (the webhooks'); the local TFX
# runner sends them for real (`trainyard runs submit --wait`, `make demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
TY="${TRAINYARD_BIN:-target/debug/trainyard}"
DIR=demo-project
T=examples/tour
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# a previous tour's endpoint, if one was left up, is stopped before its project goes
if [ -f "$DIR/trainyard.toml" ]; then
  "$TY" --project "$DIR" undeploy product-retrieval-serving >/dev/null 2>&1 || true
fi
rm -rf "$DIR"
step "init a project"
"$TY" init "$DIR"
cat "$DIR/trainyard.toml"

step "create a retrieval training run"
"$TY" --project "$DIR" runs create --config "$T/retrieval_run.json"

step "the pipeline reports progress; the Pusher writes the model where the completion says (runs/1/pushed_model, the project's)"
for ev in 01_submitted 02_train_started 03_epoch_0; do
  "$TY" --project "$DIR" runs event 1 "$T/$ev.json"
done
mkdir -p "$DIR/runs/1"
cp -r "$T/pushed_model" "$DIR/runs/1/"
"$TY" --project "$DIR" runs event 1 "$T/04_completed.json"

step "the run, its stages and its metrics"
"$TY" --project "$DIR" runs show 1
"$TY" --project "$DIR" runs history 1

step "rerun it (same name, next run number, schedule job not copied)"
"$TY" --project "$DIR" runs rerun 1
"$TY" --project "$DIR" runs list

step "registered models and name check (the blessed completion registered run 1 as version 1)"
"$TY" --project "$DIR" models list
"$TY" --project "$DIR" models check-name product-retrieval
"$TY" --project "$DIR" registry versions product-retrieval
"$TY" --project "$DIR" registry alias set product-retrieval production 1
"$TY" --project "$DIR" registry alias history product-retrieval

# Serving needs TensorFlow from the managed env (make pyenv): trainyard-serve finds it through
# TRAINYARD_PYTHON, else ./.venv-tf.
if [ -n "${TRAINYARD_PYTHON:-}" ] || [ -x .venv-tf/bin/python ]; then
  step "deploy version 1 to a local endpoint (trainyard-serve on 127.0.0.1), ask it, undeploy"
  trap '"$TY" --project "$DIR" undeploy product-retrieval-serving >/dev/null 2>&1 || true' EXIT
  "$TY" --project "$DIR" deploy 1 --preset production
  "$TY" --project "$DIR" endpoints
  url=$("$TY" --project "$DIR" endpoints --json \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["service_url"])')
  "$TY" predict --endpoint "$url" --instances "$T/instances.json"
  "$TY" --project "$DIR" undeploy product-retrieval-serving
  trap - EXIT
else
  step "deploy skipped: serving needs the managed env (make pyenv)"
fi

step "the weekly retraining schedule that run 1's schedule_config created (Monday 09:00, Europe/Warsaw), its next 5 fires"
"$TY" --project "$DIR" schedule list
"$TY" --project "$DIR" schedule show 1 --count 5

step "retrain now through a schedule of type now: it fires once, at once (one schedule per model: the weekly one goes)"
"$TY" --project "$DIR" schedule delete 1
"$TY" --project "$DIR" schedule create --from-run 1 --name "Retrain now" --type now
"$TY" --project "$DIR" runs list

step "metrics extraction (the spec's multitask example)"
"$TY" metrics extract crates/trainyard-core/tests/fixtures/multitask_training_metrics.json --model-type multitask

step "Cloud Run service-name rules"
"$TY" validate service-name product-retrieval-serving
if "$TY" validate service-name Product_Retrieval; then echo "unexpected: accepted"; exit 1; fi
echo "demo finished: project in $DIR"
