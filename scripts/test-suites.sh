#!/usr/bin/env bash
# `make test`'s driver: runs the suites (make targets) and ends with a table of each suite's
# wall time (and the CPU time of its processes; a suite far below its wall time waits on I/O).
#
#   scripts/test-suites.sh [--first "S1 ..."] [--background "T1 T2 ..."] SUITE...
#
# The --first targets (set-up) run in the foreground before anything else; then the SUITEs run
# one after another in the foreground, their output streamed, while the --background
# targets run one after another in a second lane at the same time, their output kept in
# target/test-logs/<target>.log and printed when each ends. They must not call cargo (cargo
# holds the build directory's lock while tests run, so a background cargo would only wait):
# they are run with CARGO=":" after the binaries they need were built up front (PREBUILD).
# The first failure stops both lanes from starting anything more; the exit status is 1 if any
# suite failed.
set -uo pipefail
cd "$(dirname "$0")/.."

first=""
background=""
while [ $# -ge 2 ]; do
    case $1 in
        --first) first=$2; shift 2 ;;
        --background) background=$2; shift 2 ;;
        *) break ;;
    esac
done
MAKE=${MAKE:-make}
LOGS=target/test-logs
mkdir -p "$LOGS"
rm -f "$LOGS"/*.time "$LOGS"/failed
start_all=$(date +%s)

# one suite: output to $2 ("-" streams it), wall and CPU seconds to $LOGS/<suite>.time
run_suite() {
    local suite=$1 out=$2 extra=${3:-} t0 t1 rc cpu
    t0=$(date +%s.%N)
    if [ "$out" = "-" ]; then
        # `times` after the child ends: user and system time of the finished children
        bash -c "$MAKE --no-print-directory $suite $extra; rc=\$?; times > $LOGS/$suite.cpu; exit \$rc"
    else
        bash -c "$MAKE --no-print-directory $suite $extra > $out 2>&1; rc=\$?; times > $LOGS/$suite.cpu; exit \$rc"
    fi
    rc=$?
    t1=$(date +%s.%N)
    cpu=$(awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] } printf "%.0f", s }' "$LOGS/$suite.cpu" 2>/dev/null || echo "?")
    awk -v w="$t1" -v s="$t0" -v c="$cpu" -v r="$rc" 'BEGIN { printf "%.0f %s %s\n", w - s, c, r }' > "$LOGS/$suite.time"
    [ "$rc" = 0 ] || echo "$suite" >> "$LOGS/failed"
    return "$rc"
}

for suite in $first; do
    [ -f "$LOGS/failed" ] && break
    echo "==== $suite"
    run_suite "$suite" -
done

bg_pid=""
if [ -n "$background" ] && [ ! -f "$LOGS/failed" ]; then
    (
        for suite in $background; do
            [ -f "$LOGS/failed" ] && break
            run_suite "$suite" "$LOGS/$suite.log" "CARGO=:"
            rc=$?
            echo "==== $suite (background lane) ended with status $rc; its output:"
            cat "$LOGS/$suite.log"
            echo "==== end of $suite"
        done
    ) &
    bg_pid=$!
fi

for suite in "$@"; do
    [ -f "$LOGS/failed" ] && break
    echo "==== $suite"
    run_suite "$suite" -
done
[ -n "$bg_pid" ] && wait "$bg_pid"
total=$(( $(date +%s) - start_all ))

echo
echo "make test: wall time per suite (cpu: user + system time of the processes it waited for; detached local pipelines are not counted)"
printf '  %-22s %8s %8s  %s\n' suite wall cpu result
for suite in $first "$@" $background; do
    lane=""
    case " $background " in *" $suite "*) lane=" (background lane)" ;; esac
    if [ -f "$LOGS/$suite.time" ]; then
        read -r wall cpu rc < "$LOGS/$suite.time"
        result=ok
        [ "$rc" = 0 ] || result="FAILED ($rc)"
        printf '  %-22s %7ss %7ss  %s%s\n' "$suite" "$wall" "$cpu" "$result" "$lane"
    else
        printf '  %-22s %8s %8s  %s%s\n' "$suite" - - "not run" "$lane"
    fi
done
printf '  %-22s %7ss\n' total "$total"
if [ -f "$LOGS/failed" ]; then
    echo "make test: FAILED: $(tr '\n' ' ' < "$LOGS/failed")"
    exit 1
fi
echo "make test: all suites passed"
