#!/usr/bin/env bash
# Create (or reuse) trainyard's managed Python env.
#
#   python-env/install.sh [ENV_DIR]        default ENV_DIR: <repo>/.venv-tf
#
# Idempotent: the env is reused when its stamp file matches the sha256 of the pinned inputs
# (requirements.txt, constraints*.txt, this script, the base interpreter version). Otherwise it
# is rebuilt from scratch; the stamp is written last, so an interrupted install is never
# mistaken for a valid env.
#
# Base interpreter: $TRAINYARD_BASE_PYTHON, else ~/.pyenv/versions/3.10.13/bin/python3, else
# `pyenv install 3.10.13` when pyenv is available; otherwise it fails with a clear message.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
ENV_DIR=${1:-${TRAINYARD_PYENV_DIR:-$REPO/.venv-tf}}
PY_VERSION=3.10.13
STAMP_NAME=.trainyard-env-stamp

log() { echo "[python-env] $*" >&2; }

find_base_python() {
    if [ -n "${TRAINYARD_BASE_PYTHON:-}" ]; then
        echo "$TRAINYARD_BASE_PYTHON"; return 0
    fi
    local root="${PYENV_ROOT:-$HOME/.pyenv}"
    if [ -x "$root/versions/$PY_VERSION/bin/python3" ]; then
        echo "$root/versions/$PY_VERSION/bin/python3"; return 0
    fi
    if command -v pyenv >/dev/null 2>&1; then
        log "Python $PY_VERSION not found under $root; trying: pyenv install $PY_VERSION"
        if pyenv install -s "$PY_VERSION" >&2; then
            echo "$(pyenv root)/versions/$PY_VERSION/bin/python3"; return 0
        fi
    fi
    return 1
}

if ! BASE_PY=$(find_base_python) || [ ! -x "$BASE_PY" ]; then
    log "ERROR: need CPython $PY_VERSION for the managed env (TFX 1.16 / TF 2.16 / scann 1.3.2 wheels)."
    log "       Install it with 'pyenv install $PY_VERSION' or point TRAINYARD_BASE_PYTHON at one."
    exit 2
fi
BASE_VER=$("$BASE_PY" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
case "$BASE_VER" in
    3.10.*) ;;
    *) log "ERROR: $BASE_PY is Python $BASE_VER; the pinned stack needs Python 3.10 (found wheels for cp310)."; exit 2 ;;
esac

STAMP=$( (cat "$HERE/requirements.txt" "$HERE"/constraints*.txt "$HERE/install.sh"; echo "python=$BASE_VER") \
         | sha256sum | cut -d' ' -f1)

if [ -f "$ENV_DIR/$STAMP_NAME" ] && [ "$(cat "$ENV_DIR/$STAMP_NAME")" = "$STAMP" ] \
   && [ -x "$ENV_DIR/bin/python" ] && "$ENV_DIR/bin/python" -c 'import sys' 2>/dev/null; then
    log "reusing $ENV_DIR (stamp ${STAMP:0:12})"
    exit 0
fi

log "creating $ENV_DIR from $BASE_PY (Python $BASE_VER); this takes ~2 minutes cold"
start=$(date +%s)
rm -rf "$ENV_DIR"
"$BASE_PY" -m venv "$ENV_DIR"
"$ENV_DIR/bin/python" -m pip install -q --disable-pip-version-check -U "pip==24.3.1"
"$ENV_DIR/bin/python" -m pip install -q --disable-pip-version-check \
    -r "$HERE/requirements.txt" -c "$HERE/constraints.txt" -c "$HERE/constraints-lock.txt"
"$ENV_DIR/bin/python" -m pip check
echo "$STAMP" > "$ENV_DIR/$STAMP_NAME"
log "created $ENV_DIR in $(( $(date +%s) - start )) s ($(du -sh "$ENV_DIR" | cut -f1))"
