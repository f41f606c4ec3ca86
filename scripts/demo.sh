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

rm -rf "$DIR"
step "init a project"
"$TY" init "$DIR"
cat "$DIR/trainyard.toml"

step "create a retrieval training run"
"$TY" --project "$DIR" runs create --config "$T/retrieval_run.json"

step "the pipeline reports progress"
for ev in 01_submitted 02_train_started 03_epoch_0 04_completed; do
  "$TY" --project "$DIR" runs event 1 "$T/$ev.json"
done

step "the run, its stages and its metrics"
"$TY" --project "$DIR" runs show 1
"$TY" --project "$DIR" runs history 1

step "rerun it (same name, next run number, schedule job not copied)"
"$TY" --project "$DIR" runs rerun 1
"$TY" --project "$DIR" runs list

step "registered models and name check"
"$TY" --project "$DIR" models list
"$TY" --project "$DIR" models check-name product-retrieval

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
