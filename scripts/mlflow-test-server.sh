#!/usr/bin/env bash
# Starts or stops a throwaway MLflow tracking server for tests: SQLite backend store, artifacts
# served by the server (mlflow-artifacts:/), on a free port of 127.0.0.1.
#   scripts/mlflow-test-server.sh start DIR MLFLOW_BIN   -> prints the tracking URI once the server
#                                                          answers; db, artifacts, log in DIR
#   scripts/mlflow-test-server.sh launch DIR MLFLOW_BIN  -> the same without waiting (the server
#                                                          starts in ~30 s: overlap it with a build)
#   scripts/mlflow-test-server.sh wait DIR               -> waits until the launched one answers
#   scripts/mlflow-test-server.sh stop DIR
#   MLFLOW_STORE_DIR=D: the db and artifacts in D instead of DIR (a store kept across servers)
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?directory}

wait_ready() {
  local url pid
  url=$(cat "$dir/server.url"); pid=$(cat "$dir/server.pid")
  for _ in $(seq 1 240); do
    if python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/health', timeout=2)" "$url" 2>/dev/null; then
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  echo "mlflow server did not start; its log:" >&2; tail -30 "$dir/server.log" >&2
  kill -- -"$pid" 2>/dev/null || true
  return 1
}

case "$cmd" in
start|launch)
  mlflow=${3:?path of the mlflow executable}
  mkdir -p "$dir" "${MLFLOW_STORE_DIR:-$dir}"
  dir=$(cd "$dir" && pwd)
  store=$(cd "${MLFLOW_STORE_DIR:-$dir}" && pwd)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # setsid: its own process group, so that stop ends the server and its workers, nothing else
  setsid "$mlflow" server --host 127.0.0.1 --port "$port" --workers 1 \
    --backend-store-uri "sqlite:///$store/mlflow.db" --artifacts-destination "$store/artifacts" \
    >"$dir/server.log" 2>&1 </dev/null &
  echo $! >"$dir/server.pid"
  echo "http://127.0.0.1:$port" >"$dir/server.url"
  if [ "$cmd" = start ]; then wait_ready || exit 1; fi
  cat "$dir/server.url"
  ;;
wait)
  wait_ready
  ;;
stop)
  if [ -f "$dir/server.pid" ]; then
    pid=$(cat "$dir/server.pid")
    kill -- -"$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 -- -"$pid" 2>/dev/null || true
    rm -f "$dir/server.pid"
  fi
  ;;
*) echo "usage: $0 start|launch DIR MLFLOW_BIN | wait DIR | stop DIR" >&2; exit 2 ;;
esac
