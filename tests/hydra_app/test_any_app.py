"""A Hydra app that is not ttlaunch's, launched with `hydra/launcher=ttlaunch_local`: named
jobs, records, the attempt variables, failures, re-launches, dry runs, stagger and queue cap."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.cli

APP = Path(__file__).parent / "app" / "train_app.py"


def run_app(tmp_path: Path, *overrides: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    sweep = tmp_path / "sweep"
    return subprocess.run(
        [sys.executable, str(APP), "--multirun", "hydra/launcher=ttlaunch_local", f"hydra.sweep.dir={sweep}", *overrides],
        cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
    )


def jobs_of(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "sweep" / "jobs.json").read_text())["jobs"]


def attempts(job_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (job_dir / "attempts.jsonl").read_text().splitlines()]


def test_a_sweep_of_any_app_runs_its_task_function_as_named_recorded_jobs(tmp_path: Path):
    result = run_app(tmp_path, "lr=0.1,0.01", "seed=1,2")
    assert result.returncode == 0, result.stderr
    jobs = jobs_of(tmp_path)
    assert sorted(jobs) == ["lr-0.01__seed-1", "lr-0.01__seed-2", "lr-0.1__seed-1", "lr-0.1__seed-2"]
    assert {job["status"] for job in jobs.values()} == {"COMPLETED"}
    # Job dirs are Hydra's (hydra.sweep.subdir, ${hydra.job.num} by default), holding the app's output.
    assert jobs["lr-0.1__seed-2"]["job_dir"] == str(tmp_path / "sweep" / "1")
    assert attempts(tmp_path / "sweep" / "1") == [{"lr": 0.1, "seed": 2, "attempt": "1", "resume": "0"}]
    sweep = tmp_path / "sweep"
    log = (sweep / "run-torchtune.log").read_text()
    assert "Found Hydra app" in log and "train_app.py:Train" in log
    assert log.count("SUBMIT_JOB:") == 4 and log.count("Current: COMPLETED") == 4
    results = (sweep / "summary.md").read_text().split("### Results", 1)[1]
    # What each task function returned (lr * 10) is recorded, and the table is sorted by it.
    assert {name: job["returned"] for name, job in jobs.items()} == {
        "lr-0.1__seed-1": 1.0, "lr-0.1__seed-2": 1.0, "lr-0.01__seed-1": 0.1, "lr-0.01__seed-2": 0.1,
    }
    assert "Returned: 0.1" in log
    table = [line for line in results.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| Run | lr | seed | Status | Returned | Wall time |"), "no loss columns without losses"
    assert [row.split(" | ")[0] for row in table[1:]] == [
        "| lr-0.01__seed-1", "| lr-0.01__seed-2", "| lr-0.1__seed-1", "| lr-0.1__seed-2",
    ]


def test_a_raising_task_is_a_failed_job_and_a_failed_launch(tmp_path: Path):
    result = run_app(tmp_path, "fail=true", "lr=0.5")
    assert result.returncode == 1
    job = jobs_of(tmp_path)["train_app"]  # nothing swept: named after the app
    assert job["status"] == "FAILED"
    assert "ValueError: diverged at lr=0.5" in job["error"]
    assert "1 of 1 jobs did not complete: train_app" in result.stderr


def test_relaunch_reruns_ended_jobs_by_default_and_resume_skips_completed_ones(tmp_path: Path):
    assert run_app(tmp_path, "seed=1,2").returncode == 0
    first = {name: job["job_id"] for name, job in jobs_of(tmp_path).items()}

    resumed = run_app(tmp_path, "seed=1,2", "hydra.launcher.relaunch=resume")
    assert resumed.returncode == 0, resumed.stderr
    assert {name: job["job_id"] for name, job in jobs_of(tmp_path).items()} == first
    log = (tmp_path / "sweep" / "run-torchtune.log").read_text()
    assert "0 jobs ready to submit (2 already completed" in log

    rerun = run_app(tmp_path, "seed=1,2")
    assert rerun.returncode == 0, rerun.stderr
    jobs = jobs_of(tmp_path)
    assert all(jobs[name]["job_id"] != first[name] and jobs[name]["previous_job_ids"] == [first[name]] for name in first)
    # The second run of the same job dir knows it follows an earlier one.
    assert [a["resume"] for a in attempts(tmp_path / "sweep" / "0")] == ["0", "1"]


def test_a_dry_run_writes_each_job_and_submits_nothing(tmp_path: Path):
    result = run_app(tmp_path, "seed=1,2", "hydra.launcher.dry_run=true")
    assert result.returncode == 0, result.stderr
    sweep = tmp_path / "sweep"
    assert sorted(path.name for path in (sweep / "dry_run").iterdir()) == ["seed-1.sh", "seed-2.sh"]
    assert "train_app.py:Train(cfg) with seed=2" in (sweep / "dry_run" / "seed-2.sh").read_text()
    assert not (sweep / "jobs.json").exists() and not (sweep / "0").exists()


def test_stagger_hooks_and_the_queue_cap_work_for_any_app(tmp_path: Path):
    result = run_app(
        tmp_path, "seed=1,2,3", "+ttlaunch/stagger=fixed_delay", "ttlaunch.stagger.seconds=1", "hydra.launcher.max_submitted=1",
    )
    assert result.returncode == 0, result.stderr
    jobs = jobs_of(tmp_path)
    order = sorted(jobs.values(), key=lambda job: job["submitted"])
    assert [job["name"] for job in order] == ["seed-1", "seed-2", "seed-3"]
    for earlier, later in zip(order, order[1:]):
        assert later["submitted"] >= earlier["completed"], "at most one job queued or running at a time"


def test_a_damaged_jobs_file_of_an_apps_sweep_is_rebuilt_with_its_names_and_dirs(tmp_path: Path):
    assert run_app(tmp_path, "seed=1,2").returncode == 0
    sweep = tmp_path / "sweep"
    before = jobs_of(tmp_path)
    (sweep / "jobs.json").write_text('{"version": 5, "jobs": ')
    rebuilt = subprocess.run(
        [sys.executable, "-m", "ttlaunch.status", str(sweep), "--rebuild"], capture_output=True, text=True, timeout=60,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    after = jobs_of(tmp_path)
    assert sorted(after) == ["seed-1", "seed-2"], "named as launched, not after their dirs"
    for name, job in after.items():
        assert (job["job_dir"], job["job_id"], job["status"]) == (before[name]["job_dir"], before[name]["job_id"], "COMPLETED")
        assert job["returned"] == 1.0


def test_ctrl_c_stops_an_apps_local_jobs_and_the_advised_command_resumes_them(tmp_path: Path):
    sweep = tmp_path / "sweep"
    command = [
        sys.executable, str(APP), "--multirun", "hydra/launcher=ttlaunch_local", f"hydra.sweep.dir={sweep}",
        "seed=1,2", "sleep_s=60",
    ]
    # In a process group of its own, as a terminal's foreground job is; SIGINT as Ctrl-C sends it.
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), process_group=0,
    )
    deadline = time.monotonic() + 60
    while not all((sweep / str(number) / "started").exists() for number in (0, 1)):
        assert time.monotonic() < deadline and process.poll() is None, "the tasks never started"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=90)
    assert process.returncode == 1
    jobs = "seed-1, seed-2"
    advice = f"The same command with hydra.sweep.dir={sweep} hydra.launcher.relaunch=resume resumes {jobs}"
    assert f"SweepInterrupted: interrupted: stopped the local jobs of {jobs} (stopped, not failed). {advice}" in stderr

    again = subprocess.run(
        [*command, "hydra.launcher.relaunch=resume"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert {job["status"] for job in jobs_of(tmp_path).values()} == {"COMPLETED"}
    assert [a["resume"] for a in attempts(sweep / "0")] == ["0", "1"]


def test_a_snapshot_runs_the_apps_code_as_launched_and_names_what_git_does_not_track(tmp_path: Path):
    from support import app_in_git

    app = app_in_git(tmp_path / "repo")
    (app.parent / "notes.txt").write_text("not tracked\n")
    (app.parent / "helper.py").write_text("VERSION = 2\n")  # an uncommitted edit is part of the code launched
    sweep = tmp_path / "sweep"
    launched = subprocess.run(
        [sys.executable, str(app), "--multirun", "seed=1", f"hydra.sweep.dir={sweep}", "hydra.launcher.snapshot=true"],
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    snapshot = sweep / "snapshots" / "launch-1"
    assert sorted(path.name for path in snapshot.iterdir()) == ["app.py", "app.yaml", "helper.py"]
    ran = json.loads((sweep / "0" / "ran.json").read_text())
    assert ran["version"] == 2 and Path(ran["helper"]).resolve() == (snapshot / "helper.py").resolve()
    assert "1 file(s) git does not track were not copied: notes.txt" in launched.stdout  # the app's log
    log = (sweep / "run-torchtune.log").read_text()
    assert f"Code: 3 files of {app.parent.resolve()}, copied to {snapshot}" in log


def test_a_snapshot_of_an_app_outside_git_is_one_line_before_anything_is_written(tmp_path: Path):
    import shutil

    app = tmp_path / "app"
    shutil.copytree(Path(__file__).parent / "snapshot_app", app)
    sweep = tmp_path / "sweep"
    launched = subprocess.run(
        [sys.executable, str(app / "app.py"), "--multirun", f"hydra.sweep.dir={sweep}", "hydra.launcher.snapshot=true"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert launched.returncode != 0
    last = launched.stderr.strip().splitlines()[-1]  # Hydra shows a failed launch with its traceback above
    assert f"hydra.launcher: snapshot: {app} (the app's code) is not in a git repository" in last, launched.stderr[-2000:]
    assert [path.name for path in sweep.iterdir()] == ["multirun.yaml"], "Hydra's own; nothing of ttlaunch's"
