"""The monitor as a SLURM job (detach=true) on the test cluster: requeued from outside it
carries on; cancelled, `ttlaunch status --follow` finishes the sweep, evaluations included.
(A detached cruijff_kit sweep that its monitor job ends by itself: tests/test_cruijff_e2e.py.)"""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import TEST_CONFIGS, accounted_end, epochs_script, queued, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]


def state_of(sweep: Path) -> dict:
    try:
        return json.loads((sweep / "jobs.json").read_text())
    except (OSError, ValueError):  # being replaced
        return {}


def test_a_requeued_monitor_job_carries_on_and_a_cancelled_one_is_finished_by_status_follow(run_cli, tmp_path: Path):
    script = tmp_path / "epochs.sh"
    script.write_text(epochs_script(12))  # slow enough to requeue and cancel the monitor job meanwhile
    began = time.monotonic()
    launched = run_cli(
        "--config-dir", TEST_CONFIGS, "experiment=evaltest", "compute=testcluster/cpu_1x", "payload=command",
        f'payload.command=[sh,"{script}","{{output_dir}}"]', "detach=true", "hydra.callbacks.monitor.poll_interval_s=1",
        'evaluation.command=[sh,-c,"sleep 2; echo {task} {checkpoint} > {output_dir}/result.txt",evaluate]',
        timeout=120,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert time.monotonic() - began < 20, "the launch waited for its jobs"
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "evaltest"
    monitor_job = state_of(sweep)["monitor_job_id"]
    assert f"detached: monitor job {monitor_job} (ttlaunch-monitor:evaltest)" in launched.stderr
    script_text = next((sweep / ".monitor_job" / "submitit").glob("*_submission.sh")).read_text()
    assert "#SBATCH --cpus-per-task=1" in script_text and "#SBATCH --partition=debug" in script_text
    assert "#SBATCH --requeue" in script_text and "#SBATCH --job-name=ttlaunch-monitor:evaltest" in script_text

    # Requeued from outside while the run trains: the same job comes back and carries on.
    wait_for(lambda: (queued(monitor_job) or ("", 0))[0] == "RUNNING", 60, "the monitor job to run")
    subprocess.run(["scontrol", "requeue", monitor_job], check=True)
    wait_for(lambda: queued(monitor_job) == ("RUNNING", 1), 120, "the requeued monitor job to run again")
    wait_for(lambda: "r/t1/epoch0" in state_of(sweep).get("jobs", {}), 120, "the monitor job to submit epoch 0's evaluation")

    # Cancelled before the sweep ends: nothing monitors it; status says so, --follow finishes it.
    subprocess.run(["scancel", monitor_job], check=True)
    wait_for(lambda: queued(monitor_job) is None, 60, "the monitor job to end")
    assert accounted_end(monitor_job) == "CANCELLED"
    status = subprocess.run([sys.executable, "-m", "ttlaunch.status", str(sweep)], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert f"monitor job {monitor_job} (ttlaunch-monitor:evaltest): CANCELLED" in status.stdout
    assert "nothing monitors the sweep now" in status.stdout
    follow = subprocess.run(
        [sys.executable, "-m", "ttlaunch.status", str(sweep), "--follow", "--poll-interval", "1", "--live", "off"],
        capture_output=True, text=True, timeout=300,
    )
    assert follow.returncode == 0, follow.stderr[-3000:]
    jobs = state_of(sweep)["jobs"]
    assert sorted(jobs) == ["base/t1", "r", "r/t1/epoch0", "r/t1/epoch1"]
    assert all(job["status"] == "COMPLETED" for job in jobs.values())
    assert all(job["previous_job_ids"] == [] for job in jobs.values()), "a job was submitted twice"
    for epoch in (0, 1):  # epoch 1's evaluation submitted by status --follow, from the saved session
        result = sweep / "r" / "t1" / f"epoch{epoch}" / "outputs" / "result.txt"
        assert result.read_text().split() == ["t1", str(sweep / "r" / "outputs" / f"epoch_{epoch}")]
    assert (sweep / "summary.md").is_file()
    log = (sweep / "run-torchtune.log").read_text()
    assert log.count("SUBMIT_JOB: r/t1/epoch1\n") == 1 and log.count("MONITOR_JOB: ttlaunch-monitor:evaltest\n") == 1
