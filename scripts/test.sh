#!/usr/bin/env bash
# All tests: set up .venv, install and start the single-node SLURM test cluster, run pytest.
# Extra arguments go to pytest (e.g. -m "not slurm" to skip the cluster tier).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
if [ "$(id -u)" = 0 ]; then
  ./scripts/testcluster.sh start
else
  echo "test.sh: not root: tests marked slurm run only if the test cluster is already up" >&2
fi
exec .venv/bin/python -m pytest "$@"
