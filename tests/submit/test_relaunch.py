"""What a re-launch submits, and one launcher or monitor per sweep."""

import subprocess
import sys
from pathlib import Path

import pytest

from ttlaunch.base.errors import SweepBusy
from ttlaunch.inputs.summary import Run, RunType
from ttlaunch.records.jobs_file import JobRecord
from ttlaunch.records.sweep_lock import SweepLock
from ttlaunch.submit.selection import select_jobs, unrecorded_job_id
from ttlaunch.submit.sweep_jobs import JobSpec


def job(name: str) -> JobSpec:
    return JobSpec(name=name, run=Run(name=name, type=RunType.FINE_TUNED, parameters={}), overrides=(f"run_name={name}",))


RECORDS = {
    "done": JobRecord(name="done", job_id="1", status="COMPLETED"),
    "queued": JobRecord(name="queued", job_id="2", status="PENDING"),
    "running": JobRecord(name="running", job_id="3", status="RUNNING"),
    "requeued": JobRecord(name="requeued", job_id="4", status="REQUEUED"),
    "failed": JobRecord(name="failed", job_id="5", status="FAILED"),
    "timeout": JobRecord(name="timeout", job_id="6", status="TIMEOUT"),
    "rejected": JobRecord(name="rejected", status="SUBMIT_FAILED", error="invalid partition"),
}
NAMES = [*RECORDS, "new"]


def test_only_runs_never_submitted_are_submitted_and_live_ones_reattached():
    selection = select_jobs([job(name) for name in NAMES], RECORDS, resubmit_failed=False)
    assert [spec.name for spec in selection.submit] == ["rejected", "new"]
    assert selection.attach == ["queued", "running", "requeued"]
    assert selection.completed == ["done"]
    assert selection.failed == ["failed", "timeout"]


def test_resubmit_failed_adds_the_runs_whose_last_attempt_failed():
    selection = select_jobs([job(name) for name in NAMES], RECORDS, resubmit_failed=True)
    assert [spec.name for spec in selection.submit] == ["failed", "timeout", "rejected", "new"]
    assert selection.attach == ["queued", "running", "requeued"] and selection.failed == []


def test_a_submission_the_state_file_missed_is_found_by_its_script(tmp_path: Path):
    folder = tmp_path / "run" / "submitit"
    folder.mkdir(parents=True)
    assert unrecorded_job_id(tmp_path / "run") is None
    (folder / ".submission_file_0a1b.sh").write_text("")  # sbatch never answered: no job
    (folder / "98_submission.sh").write_text("")
    (folder / "101_submission.sh").write_text("")
    assert unrecorded_job_id(tmp_path / "run") == "101"


HOLD = """
import sys, time
from pathlib import Path
from ttlaunch.records.sweep_lock import SweepLock
lock = SweepLock(Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


@pytest.mark.cli
def test_a_held_sweep_is_refused_naming_its_holder_and_freed_when_the_holder_dies(tmp_path: Path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SweepBusy) as refused:
            SweepLock(tmp_path).acquire()
        assert f"pid {holder.pid} on " in str(refused.value) and "python -m ttlaunch.status" in str(refused.value)
    finally:
        holder.kill()  # as kill -9 would: no chance to clean up
        holder.wait()
    with SweepLock(tmp_path):
        assert (tmp_path / ".monitor.holder").read_text().startswith("pid ")
    assert not (tmp_path / ".monitor.holder").exists()


@pytest.mark.cli
def test_local_jobs_outliving_a_killed_launcher_are_reattached_not_run_again(tmp_path: Path):
    import json
    import time

    from support import cli_invocation

    experiments = tmp_path / "cfg" / "experiment"
    experiments.mkdir(parents=True)
    (experiments / "slow.yaml").write_text("experiment: {name: slow}\nruns: [{name: a, type: fine-tuned}, {name: b, type: fine-tuned}]\n")
    args = ["--config-dir", str(tmp_path / "cfg"), "experiment=slow", "payload=command", "payload.command=[sleep,'6']",
           ]
    command, env = cli_invocation(tmp_path, *args)
    state = tmp_path / "work" / "ttlaunch_sweeps" / "slow" / "jobs.json"
    first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (state.exists() and sum(job["status"] == "RUNNING" for job in json.loads(state.read_text())["jobs"].values()) == 2):
        assert time.monotonic() < deadline, "the jobs never ran"
        time.sleep(0.2)
    first.kill()
    first.wait()
    pids = {job["job_id"] for job in json.loads(state.read_text())["jobs"].values()}

    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    jobs = json.loads(state.read_text())["jobs"]
    assert {job["job_id"] for job in jobs.values()} == pids, "the same two jobs, none started again"
    assert all(job["status"] == "COMPLETED" for job in jobs.values())
    log = state.with_name("run-torchtune.log").read_text()
    assert log.count("SUBMIT_JOB") == 2 and "2 still queued or running" in log
