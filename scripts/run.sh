#!/usr/bin/env bash
# Runs the app from the project's virtual environment, made and filled on first use (see venv.sh);
# every flag goes to app.py: bash scripts/run.sh --model tiny --port 7861
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
umo_venv_ready "$UMO_ROOT/requirements.txt"
exec python3 "$UMO_ROOT/app.py" "$@"
