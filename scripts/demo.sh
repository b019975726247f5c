#!/usr/bin/env bash
# The main job: set up, then run the demo sweep (real torchtune, CPU, local executor).
# Extra arguments are Hydra overrides, e.g. paths.work_root=/tmp/ttlaunch.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m ttlaunch.launch experiment=demo "$@"
