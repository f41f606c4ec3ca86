#!/usr/bin/env bash
# Installs headless Chromium from Debian's packages when it is missing (idempotent; needs root
# or sudo), then prints the path of the binary. Used by `make test-report`.
set -euo pipefail

find_chromium() {
    for c in chromium chromium-browser; do
        if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return 0; fi
    done
    return 1
}

if ! path=$(find_chromium); then
    echo "report: installing chromium from Debian's packages" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
    path=$(find_chromium)
fi
echo "$path"
