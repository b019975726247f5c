#!/usr/bin/env bash
# Create .venv (if missing) and install ttlaunch with its torchtune, figures, eval and test extras.
# Idempotent. A strict editable install: links to src/, hydra_plugins/ and configs/ (Hydra
# cannot find the plugin through a default one), so a new module needs a re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# torch first, pinned: left to the resolver, an unpinned torch pulls gigabytes of CUDA wheels.
"${pip[@]}" "torch==2.13.0"
"${pip[@]}" -c scripts/constraints.txt -e ".[torchtune,figures,eval,test]" --config-settings editable_mode=strict
# ttlaunch's own bytecode, as pip compiles a wheel's: jobs and commands start without compiling.
.venv/bin/python scripts/bytecode.py
