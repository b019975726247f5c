"""The start-up race on the real test cluster: eight real torchtune jobs sharing one dataset
start together on an empty datasets cache; one builds the cache, the others wait for it."""

import json
import re
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from support import TEST_CONFIGS

pytest.importorskip("torchtune")
pytestmark = [pytest.mark.slurm, pytest.mark.torchtune, pytest.mark.usefixtures("slurm_cluster")]

RUNS = [f"r{index}" for index in range(1, 9)]
LOGGED = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]\[ttlaunch\.([\w.]+)\]\[INFO\] - (.*)$", re.M)


def logged(job_dir: Path) -> list[tuple[datetime, str]]:
    text = "".join(path.read_text() for path in (job_dir / "submitit").glob("*_log.out"))
    return [(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f"), message) for stamp, _, message in LOGGED.findall(text)]


def test_eight_torchtune_jobs_starting_together_build_the_dataset_cache_once(run_cli, tmp_path: Path):
    # The default stagger, and a poll interval longer than the whole test: the launch ends
    # because the monitor saw each job's end from its result file, confirmed by sacct.
    result = run_cli(
        "--config-dir", TEST_CONFIGS, "experiment=race8", "compute=testcluster/cpu_1x",
        "hydra.callbacks.monitor.poll_interval_s=600", timeout=500,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "race8"
    jobs = json.loads((sweep / "jobs.json").read_text())["jobs"]
    assert sorted(jobs) == RUNS and all(job["status"] == "COMPLETED" for job in jobs.values())
    accounted = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ",".join(job["job_id"] for job in jobs.values()), "--format=State,Start"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    assert [line.split("|")[0] for line in accounted] == ["COMPLETED"] * 8
    starts = sorted(datetime.fromisoformat(line.split("|")[1]) for line in accounted)
    assert (starts[-1] - starts[0]).total_seconds() <= 10, f"the jobs did not start together: {starts}"

    logs = {run: logged(sweep / run) for run in RUNS}
    building = [run for run, lines in logs.items() if any("preparing for the sweep: datasets cache" in m for _, m in lines)]
    assert len(building) == 1, f"the datasets cache was built by {building}"
    (record,) = [
        json.loads(path.read_text()) for path in (sweep / "prepared").glob("*.json")
        if json.loads(path.read_text())["depends_on"]["step"] == "dataset cache"
    ]
    assert record["prepared_by"].startswith(f"{building[0]} (job {jobs[building[0]]['job_id']})")
    assert Path(record["produced"][0]).is_dir() and Path(record["produced"][0]).is_relative_to(sweep / "hf_home")
    for run in set(RUNS) - set(building):
        said = [m for _, m in logs[run] if "datasets cache" in m]
        assert len(said) == 1 and re.match(r"prepared (already )?by ", said[0]), said

    # Every payload started after the cache was ready, all within seconds of each other.
    ready = max(stamp for stamp, m in logs[building[0]] if m.startswith("prepared in ") and "datasets cache" in m)
    payload_starts = sorted(
        stamp for lines in logs.values() for stamp, m in lines if m.startswith("running: tune run")
    )
    assert len(payload_starts) == 8 and payload_starts[0] >= ready
    assert (payload_starts[-1] - payload_starts[0]).total_seconds() <= 10, payload_starts
