#!/usr/bin/env bash
# All tests: set up .venv, install and start the single-node SLURM test cluster, run pytest.
# The cluster tier (marked slurm: mostly waiting on SLURM) and the rest (mostly computing)
# run side by side, each in a pytest of its own; each prints its report when it ends.
# Extra arguments go to both; one that picks tests itself (-m, -k, a path) runs one pytest,
# e.g. ./scripts/test.sh -m "not slurm" to skip the cluster tier.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
if [ "$(id -u)" = 0 ]; then
  ./scripts/testcluster.sh start
else
  echo "test.sh: not root: tests marked slurm run only if the test cluster is already up" >&2
fi
for arg in "$@"; do
  case "$arg" in
    -m|-k|tests*|*.py*) exec .venv/bin/python -m pytest "$@" ;;
  esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python -m pytest -m slurm --basetemp "$work/slurm" "$@" > "$work/slurm.log" 2>&1 &
cluster=$!
.venv/bin/python -m pytest -m "not slurm" --basetemp "$work/rest" "$@" > "$work/rest.log" 2>&1 &
rest=$!
status=0
wait "$rest" || status=$?
echo "=== tests not on the cluster (-m 'not slurm') ==="
cat "$work/rest.log"
wait "$cluster" || status=$((status ? status : $?))
echo "=== tests on the test cluster (-m slurm) ==="
cat "$work/slurm.log"
exit "$status"
