#!/usr/bin/env bash
# The control plane's cost per tracked run: one control plane polling N running
# runs in a SQLite project, at two sizes in one command so the per-run cost compares.
#   bash benches/control_plane/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-20}
profile=${BENCH_PROFILE:-release}
flag=$([ "$profile" = release ] && echo --release || true)
cargo build -q $flag -p trainyard --example bench_control_plane
bin=target/$([ "$profile" = release ] && echo release || echo debug)/examples/bench_control_plane
for n in 100 1000; do
  "$bin" "$n" "$secs"
done
