#!/bin/bash
# Installs google-cloud-cli (gsutil) from Google's apt repository into a Debian/Ubuntu image.
set -euo pipefail
apt-get update
apt-get install -y --no-install-recommends curl gnupg ca-certificates
curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg |
    gpg --dearmor -o /usr/share/keyrings/cloud.google.gpg
echo "deb [signed-by=/usr/share/keyrings/cloud.google.gpg] https://packages.cloud.google.com/apt cloud-sdk main" \
    >/etc/apt/sources.list.d/google-cloud-sdk.list
apt-get update
apt-get install -y --no-install-recommends google-cloud-cli
rm -rf /var/lib/apt/lists/*
