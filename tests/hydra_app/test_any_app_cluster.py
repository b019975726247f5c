"""A Hydra app that is not ttlaunch's, on the test cluster: a compute preset chosen from the
app, detach and `ttlaunch status --follow`, and a requeue that calls the task's checkpoint."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import app_in_git, commit_all, full_cluster

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

APP = Path(__file__).parent / "app" / "train_app.py"


def app_command(sweep: Path, *overrides: str) -> list[str]:
    return [sys.executable, str(APP), "--multirun", "+ttlaunch/compute=testcluster/cpu_1x", f"hydra.sweep.dir={sweep}", *overrides]


def jobs_of(sweep: Path) -> dict:
    try:
        return json.loads((sweep / "jobs.json").read_text())["jobs"]
    except (OSError, ValueError):
        return {}


def test_a_preset_from_the_app_submits_to_slurm_and_a_detached_sweep_is_followed_later_from_its_snapshot(tmp_path: Path):
    app = app_in_git(tmp_path / "repo")
    sweep = tmp_path / "sweep"
    with full_cluster():  # the jobs wait in the queue while the app's code is edited and committed
        launched = subprocess.run(
            [sys.executable, str(app), "--multirun", "hydra/launcher=ttlaunch_slurm", "+ttlaunch/compute=testcluster/cpu_1x",
             f"hydra.sweep.dir={sweep}", "seed=1,2", "sleep_s=2", "hydra.callbacks.monitor.detach=true",
             "hydra.launcher.snapshot=true"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )
        (app.parent / "helper.py").write_text("VERSION = 2\n")
        commit_all(app.parent)
    assert launched.returncode == 0, launched.stderr
    assert "detached: monitor job " in launched.stderr and "(ttlaunch-monitor:" in launched.stderr
    jobs = jobs_of(sweep)
    assert sorted(jobs) == ["seed-1", "seed-2"], "named by what was swept: not the preset, not sleep_s"
    script = Path(jobs["seed-1"]["job_dir"]) / "submitit" / f"{jobs['seed-1']['job_id']}_submission.sh"
    assert "#SBATCH --partition=debug" in script.read_text()

    followed = subprocess.run(
        [sys.executable, "-m", "ttlaunch.status", str(sweep), "--follow", "--live", "off"],
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )
    assert followed.returncode == 0, followed.stderr
    assert {job["status"] for job in jobs_of(sweep).values()} == {"COMPLETED"}
    assert (sweep / "summary.md").is_file()
    # They ran the code as launched, from the snapshot, not the edit made while they waited.
    for job in jobs.values():
        ran = json.loads((Path(job["job_dir"]) / "ran.json").read_text())
        assert ran["version"] == 1 and ran["helper"].startswith(str(sweep / "snapshots" / "launch-1")), ran


def test_a_preempted_job_calls_the_tasks_checkpoint_then_resumes_as_attempt_2_in_the_same_wandb_run(tmp_path: Path):
    pytest.importorskip("wandb")
    sweep = tmp_path / "sweep"
    launch = subprocess.Popen(
        app_command(sweep, "sleep_s=300", "wandb=true", "hydra.callbacks.monitor.poll_interval_s=1"),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"},
    )
    job_dir = sweep / "0"
    deadline = time.monotonic() + 120
    while not (job_dir / "started").exists():
        assert time.monotonic() < deadline and launch.poll() is None, "the task never started"
        time.sleep(0.2)
    job_id = jobs_of(sweep)["train_app"]["job_id"]
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)  # SLURM's warning, as before a preemption

    _, stderr = launch.communicate(timeout=240)
    assert launch.returncode == 0, stderr[-3000:]
    assert (job_dir / "checkpoint.txt").read_text() == "saved\n"
    lines = [json.loads(line) for line in (job_dir / "attempts.jsonl").read_text().splitlines()]
    assert [(line["attempt"], line["resume"]) for line in lines] == [("1", "0"), ("2", "1")]
    # One W&B run for the job, whatever happened to it: the app's own wandb.init() got the
    # point's id and resume=allow from ttlaunch (WANDB_RUN_ID, WANDB_RESUME), and its dir.
    tracker = json.loads((job_dir / "tracker.json").read_text())
    assert [line["wandb_id"] for line in lines] == [tracker["id"]] * 2
    assert len(list((job_dir / "wandb").glob(f"offline-run-*-{tracker['id']}"))) == 2
    (job,) = jobs_of(sweep).values()
    assert (job["status"], job["attempt"], job["job_id"]) == ("COMPLETED", 2, job_id)
    assert [(entry["attempt"], entry["reason"]) for entry in job["requeues"]] == [(1, "preempted")]
