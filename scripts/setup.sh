#!/usr/bin/env bash
# Create .venv (if missing) and install ttlaunch with its torchtune, figures, eval and test extras.
# Idempotent. The editable install puts src/ on the path: new modules need no re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# torch first, pinned: left to the resolver, an unpinned torch pulls gigabytes of CUDA wheels.
"${pip[@]}" "torch==2.13.0"
"${pip[@]}" -c scripts/constraints.txt -e ".[torchtune,figures,eval,test]"
