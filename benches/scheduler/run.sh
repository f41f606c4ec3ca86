#!/usr/bin/env bash
# Fire lag of the embedded scheduler holding many active schedules on SQLite, and the CPU a
# poll costs (see README.md). Arguments go to the bench program, e.g.
#   bash benches/scheduler/run.sh --schedules 10000 --fires 2000 --window 60
set -euo pipefail
cd "$(dirname "$0")/../.."
# BENCH_PROFILE=dev uses the debug build (SQLite unoptimized too): an upper bound on the lag.
profile=${BENCH_PROFILE:-release}
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
mkdir -p target/scheduler-bench
cargo build --profile "$profile" -q -p trainyard --example bench_scheduler
exec "target/$dir/examples/bench_scheduler" --out "target/scheduler-bench/results-$profile.json" "$@"
