#!/usr/bin/env bash
# Check an `export lerobot` folder with LeRobot's own loader, in a separate Python 3.12 environment
# (LeRobot 0.5+ needs 3.12; it is never a dependency of the app or its tests).
#   tools/check_lerobot_export.sh LEROBOT_DIR [ENV_DIR]      (ENV_DIR default .venv-lerobot)
set -euo pipefail
cd "$(dirname "$0")/.."
dataset="${1:?usage: tools/check_lerobot_export.sh LEROBOT_DIR [ENV_DIR]}"
env="${2:-.venv-lerobot}"
python="${PYTHON312:-python3.12}"
if [ ! -x "$env/bin/python" ]; then
  "$python" -m venv "$env"
  "$env/bin/pip" install -q "lerobot[dataset]==0.6.1" "torch==2.11.0"
fi
"$env/bin/python" tools/load_lerobot_export.py "$dataset"
