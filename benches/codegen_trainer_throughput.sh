#!/usr/bin/env bash
# Benchmark (not a test): training examples/s of the GENERATED retrieval trainer vs a plain
# TFRS-tutorial-style trainer (benches/codegen_tutorial_trainer.py), same synthetic data, same
# epochs and batch size, both measured in this run on this machine. Reports the ratio and
# both recall@100 values on the same held-out (newest 10%) interactions, scored by the same
# code (benches/codegen_recall_eval.py: the generated trainer through its exported serving
# model, the tutorial through its towers). Results: benches/README-codegen.md.
#
#   benches/codegen_trainer_throughput.sh [tiny|small|large] [EPOCHS] [BATCH] [LR of the generated trainer]
# The tutorial trainer uses its own recipe: Adagrad(0.1) on TFRS's default SUM loss.
# Needs the managed env (make pyenv). large = ~1M transactions.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIZE=${1:-small}
EPOCHS=${2:-3}
BATCH=${3:-1024}
LR=${4:-0.01}
PY=${TRAINYARD_PYTHON:-$ROOT/.venv-tf/bin/python}
CARGO=${CARGO:-cargo}
WORK=${BENCH_WORK:-$ROOT/target/bench-codegen-$SIZE}
HARNESS=$ROOT/crates/trainyard-codegen/tests/py/harness.py
export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2
[ -x "$PY" ] || { echo "managed python $PY missing: run make pyenv" >&2; exit 2; }
rm -rf "$WORK"; mkdir -p "$WORK"

echo "== data ($SIZE)"
$CARGO run -q --release -p trainyard-synth -- "$SIZE" "$WORK/data" | tee "$WORK/synth.txt"

echo "== generate modules (retrieval, brute force; Adam $LR, batch $BATCH, $EPOCHS epochs)"
cat > "$WORK/params.json" <<JSON
{"epochs": $EPOCHS, "batch_size": $BATCH, "learning_rate": $LR, "optimizer": "adam",
 "early_stopping": {"enabled": false, "patience": 3, "monitor": "val_loss", "min_delta": 0.0}}
JSON
# Same model as the tutorial (id embeddings, dot product) unless BENCH_MODEL/BENCH_FEATURES say otherwise
MODEL_JSON=${BENCH_MODEL:-$ROOT/benches/codegen_bench_model.json}
FEATURES_JSON=${BENCH_FEATURES:-$ROOT/benches/codegen_bench_features.json}
$CARGO run -q -p trainyard-codegen --example generate -- "$WORK/modules" "$MODEL_JSON" "$FEATURES_JSON" "$WORK/params.json"

echo "== tf.Transform"
"$PY" "$HARNESS" transform --modules "$WORK/modules" --data "$WORK/data" --work "$WORK/work" 2>&1 | grep TRANSFORM_OK

echo "== generated trainer (run_fn)"
"$PY" "$HARNESS" train --modules "$WORK/modules" --work "$WORK/work" --out "$WORK/out" \
    --epochs "$EPOCHS" --batch-size "$BATCH" > "$WORK/generated.log" 2>&1 || { tail -40 "$WORK/generated.log"; exit 1; }
grep -E "\[trainyard\] epoch" "$WORK/generated.log"

echo "== tutorial-style trainer"
"$PY" "$ROOT/benches/codegen_tutorial_trainer.py" "$WORK/data" --epochs "$EPOCHS" --batch-size "$BATCH" \
    > "$WORK/tutorial.log" 2>&1 || { tail -40 "$WORK/tutorial.log"; exit 1; }

echo "== recall@100 of the generated trainer's exported model (benches/codegen_recall_eval.py)"
"$PY" "$ROOT/benches/codegen_recall_eval.py" "$WORK/out/serving_model" "$WORK/data" 2>/dev/null | grep EVAL_RESULT > "$WORK/eval.txt"
cat "$WORK/eval.txt"

"$PY" - "$WORK" <<'PYEOF'
import json, sys, re
work = sys.argv[1]
evaluated = json.loads(open(work + "/eval.txt").read().split(" ", 1)[1])
m = json.load(open(work + "/out/model_run/training_metrics.json"))
tut = json.loads([l for l in open(work + "/tutorial.log") if l.startswith("TUTORIAL_RESULT ")][-1].split(" ", 1)[1])
rows = tut["train_examples"]  # both trainers read the same train split
epochs = m["run"]["epochs_completed"]
gen_eps = rows * epochs / m["run"]["train_seconds"]
pop = re.search(r"popularity_recall_at_100=([0-9.]+)", open(work + "/synth.txt").read()).group(1)
out = {
    "train_examples": rows, "epochs": epochs,
    "generated_examples_per_second": round(gen_eps, 1),
    "tutorial_examples_per_second": round(tut["examples_per_second"], 1),
    "ratio_generated_over_tutorial": round(gen_eps / tut["examples_per_second"], 2),
    "generated_test_recall_at_100": round(evaluated["test_recall_at_100"], 4),
    "tutorial_test_recall_at_100": round(tut["test_recall_at_100"], 4),
    # the generated trainer's own evaluation (vocabulary indices, pessimistic ties): a cross-check
    "generated_trainer_reported_test_recall_at_100": round(m["final_metrics"]["test_recall_at_100"], 4),
    "popularity_recall_at_100": float(pop),
    "generated_fit_seconds_incl_per_epoch_eval": round(m["run"]["train_seconds"], 2),
    "tutorial_fit_seconds": round(tut["train_seconds"], 2),
}
json.dump(out, open(work + "/result.json", "w"), indent=1)
print("BENCH_RESULT " + json.dumps(out))
ok = out["generated_test_recall_at_100"] >= out["tutorial_test_recall_at_100"] and out["ratio_generated_over_tutorial"] >= 1.5
print("TARGET recall@100 >= tutorial's at >= 1.5x its examples/s: %s" % ("met" if ok else "NOT met"))
PYEOF
