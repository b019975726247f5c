"""Fault injection on the real test cluster: `sacct` and `seff` on PATH are wrappers that call
the real commands and damage the usage figures they report. A sweep must still end with every
run COMPLETED, exit 0 and no traceback; the damaged figures are recorded as unknown."""

import json
import os
import shutil
from pathlib import Path

import pytest

from support import TEST_CONFIGS

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]


# sacct's usage query (the one asking for AllocCPUS) gets 0 CPUs, no CPU time and memory
# figures nobody can read; every other sacct call (job states, times) passes through intact.
SACCT_WRAPPER = """#!/bin/bash
set -o pipefail
case "$*" in
  *AllocCPUS*) {real} "$@" | awk -F'|' 'BEGIN {{OFS="|"}} {{$4=""; $5="0"; $6="lots"; $7="??K"; print}}' ;;
  *) exec {real} "$@" ;;
esac
"""

# seff's report with a zero core count, a CPU efficiency that is not a number and memory
# lines that say nothing usable.
SEFF_WRAPPER = """#!/bin/bash
set -o pipefail
{real} "$@" | sed -E \\
  -e 's/^(Cores( per node)?): .*/\\1: 0/' \\
  -e 's/^CPU Efficiency: .*/CPU Efficiency: nan% of 00:00:00 core-walltime/' \\
  -e 's/^Memory Utilized: .*/Memory Utilized: 1.2.3 MB/' \\
  -e 's/^Memory Efficiency: .*/Memory Efficiency: -5.00% of INVALID/'
"""


def damaging_path(tmp_path: Path) -> str:
    wrappers = tmp_path / "damaging-bin"
    wrappers.mkdir()
    for name, template in (("sacct", SACCT_WRAPPER), ("seff", SEFF_WRAPPER)):
        real = shutil.which(name)
        assert real is not None, f"{name} is not installed on the test cluster"
        script = wrappers / name
        script.write_text(template.format(real=real))
        script.chmod(0o755)
    return str(wrappers)


def test_damaged_usage_figures_cost_a_figure_never_the_sweep(run_cli, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PATH", f"{damaging_path(tmp_path)}:{os.environ['PATH']}")
    result = run_cli(
        "--config-dir", TEST_CONFIGS, "experiment=stamp4", "compute=testcluster/cpu_1x",
        "hydra.callbacks.monitor.poll_interval_s=1", "hydra.callbacks.monitor.metrics_retry_s=2",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr

    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "stamp4"
    jobs = json.loads((sweep / "jobs.json").read_text())["jobs"]
    assert sorted(jobs) == ["s1", "s2", "s3", "s4"]
    assert all(job["status"] == "COMPLETED" for job in jobs.values())
    for job in jobs.values():
        metrics = job["metrics"]
        assert metrics["cpu_efficiency"] is None, metrics
        assert metrics["memory_used_mb"] is None and metrics["memory_requested_mb"] is None, metrics
        assert metrics["wall_time"] is not None, "an undamaged figure is kept"

    log = (sweep / "run-torchtune.log").read_text()
    assert log.count("COMPUTE_METRICS") == 4
    assert "CPU Efficiency: unknown" in log and "Memory: unknown / unknown" in log

    summary = (sweep / "summary.md").read_text()
    compute = summary.split("### Compute", 1)[1].split("###", 1)[0]
    rows = [line for line in compute.splitlines() if line.startswith("| s")]
    assert len(rows) == 4, summary
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[2:5] == ["unknown", "unknown", "unknown"], row
