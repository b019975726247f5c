"""Requeue and resume on the real test cluster (cred_expire=10: a requeued job starts again
within about 11 s)."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from support import TEST_CONFIGS, cli_invocation, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

ON_CLUSTER = ["compute=testcluster/cpu_1x", "hydra.callbacks.monitor.poll_interval_s=1"]


def start_launch(tmp_path: Path, *args: str) -> subprocess.Popen:
    command, env = cli_invocation(tmp_path, *args)
    return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def job_of(sweep: Path, name: str) -> dict:
    try:
        return json.loads((sweep / "jobs.json").read_text())["jobs"].get(name, {})
    except (OSError, ValueError):
        return {}


def job_says(sweep: Path, name: str, text: str, times: int = 1) -> bool:
    """The job's stdout (its attempts' together) has `text`, at least `times` times."""
    stdout = job_of(sweep, name).get("stdout")
    try:
        return stdout is not None and Path(stdout).read_text().count(text) >= times
    except OSError:
        return False


def restarts(job_id: str) -> int:
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-O", "RestartCnt"], capture_output=True, text=True).stdout
    return int(out.strip() or 0)


def write_dataset(path: Path, rows: int) -> None:
    """Enough rows that an epoch of the tiny model lasts seconds: time to interrupt epoch 1."""
    words = [f"w{index:04d}" for index in range(rows)]
    path.write_text(json.dumps([{"instruction": f"Capitalize: {w}", "input": "", "output": w.upper()} for w in words]))


@pytest.mark.torchtune
def test_a_run_preempted_after_epoch_0_resumes_at_epoch_1(tmp_path: Path):
    """(A job requeued without warning, by scontrol, resumes the same way from what is on
    disk: test_multitask_cluster.py requeues one so.)"""
    pytest.importorskip("torchtune")
    dataset = tmp_path / "big.json"
    write_dataset(dataset, 3000)
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "resume1"
    launch = start_launch(
        tmp_path, "--config-dir", TEST_CONFIGS, "experiment=resume1", *ON_CLUSTER, "requeue=on",
        f'payload.overrides=["dataset.data_files={dataset}","max_steps_per_epoch=null"]',
    )
    epoch_0 = sweep / "r1" / "outputs" / "epoch_0" / "adapter_model.pt"
    wait_for(lambda: epoch_0.is_file() and (sweep / "r1" / "outputs" / "recipe_state" / "recipe_state.pt").is_file(), 300, "epoch 0")
    job_id = job_of(sweep, "r1")["job_id"]
    saved_at = epoch_0.stat().st_mtime_ns
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)  # SLURM's warning, as before a preemption
    assert not (sweep / "r1" / "outputs" / "epoch_1").exists(), "epoch 1 ended before the interruption"

    _, stderr = launch.communicate(timeout=300)
    assert launch.returncode == 0, stderr[-3000:]
    job = job_of(sweep, "r1")
    assert (job["status"], job["attempt"], job["job_id"]) == ("COMPLETED", 2, job_id)
    expected = "preempted"
    assert [(entry["attempt"], entry["reason"]) for entry in job["requeues"]] == [(1, expected)]
    assert (sweep / "r1" / "outputs" / "epoch_1" / "adapter_model.pt").is_file()
    assert epoch_0.stat().st_mtime_ns == saved_at, "epoch 0 was trained again"
    torchtune_log = Path(job["stderr"]).read_text()  # both attempts append to it
    saves = re.findall(r"Adapter checkpoint of size .* saved to .*/(epoch_\d)/adapter_model\.pt", torchtune_log)
    assert saves == ["epoch_0", "epoch_1"], "each epoch trained and saved once"
    assert "resume_from_checkpoint: true" in torchtune_log
    assert "resuming at epoch 1 of 2" in Path(job["stdout"]).read_text()
    # Both attempts' metric logs make one loss curve with every step once: the steps of
    # epoch 1 the first attempt logged before it stopped were trained again, and count once.
    from ttlaunch.monitor.training import training_curves
    from ttlaunch.records.jobs_file import load_state

    assert len(list((sweep / "r1" / "outputs" / "logs").glob("log_*.txt"))) == 2
    training = job["training"]
    assert training["steps_done"] == training["steps_total"] == 2 * training["steps_per_epoch"]
    steps = [step for step, _ in training_curves(load_state(sweep / "jobs.json", "resume1", sweep))["r1"]]
    assert steps == list(range(1, training["steps_total"] + 1)), "no gap, no step twice"
    log = (sweep / "run-torchtune.log").read_text()
    assert f"Current: REQUEUED\nJob ID: {job_id}\nAttempt: 2 (attempt 1 ended: {expected})" in log
    assert "Summary: 1 jobs finished - 1 COMPLETED, 0 FAILED" in log


def sleeping_run(tmp_path: Path, *more: str) -> tuple[subprocess.Popen, Path]:
    launch = start_launch(
        tmp_path, "--config-dir", TEST_CONFIGS, "experiment=probe_ok", *ON_CLUSTER, "payload=command",
        "payload.command=[sleep,'300']", *more,
    )
    return launch, tmp_path / "work" / "ttlaunch_sweeps" / "probe_ok"


def test_timeouts_are_requeued_up_to_max_num_timeout(tmp_path: Path):
    # With a 1-minute limit every warning counts as the time limit's.
    launch, sweep = sleeping_run(
        tmp_path, "requeue=on", "requeue.max_num_timeout=1", "requeue.grace_s=5", "compute.timeout_min=1",
        "hydra.launcher.signal_delay_s=30",
    )
    try:
        wait_for(lambda: job_of(sweep, "ok_run").get("status") == "RUNNING", 120, "attempt 1 running")
        job_id = job_of(sweep, "ok_run")["job_id"]
        wait_for(lambda: job_says(sweep, "ok_run", "running: "), 60, "the payload started")
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
        wait_for(lambda: job_of(sweep, "ok_run").get("attempt") == 2 and job_of(sweep, "ok_run").get("status") == "RUNNING", 120, "attempt 2 running")
        wait_for(lambda: job_says(sweep, "ok_run", "running: ", times=2), 60, "attempt 2's payload started")
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
        refusal = "not requeued: 1 timeouts already (requeue.max_num_timeout=1); running on"
        wait_for(lambda: job_says(sweep, "ok_run", refusal), 60, "attempt 2's answer to the warning")
        assert restarts(job_id) == 1, "requeued beyond max_num_timeout"
        assert [entry["reason"] for entry in job_of(sweep, "ok_run")["requeues"]] == ["timeout"]
    finally:
        subprocess.run(["scancel", job_of(sweep, "ok_run").get("job_id", "0")])
        launch.communicate(timeout=120)


def test_with_requeue_off_nothing_is_requeued(tmp_path: Path):
    launch, sweep = sleeping_run(tmp_path, "requeue=off")
    try:
        wait_for(lambda: job_of(sweep, "ok_run").get("status") == "RUNNING", 120, "running")
        job_id = job_of(sweep, "ok_run")["job_id"]
        wait_for(lambda: job_says(sweep, "ok_run", "running: "), 60, "the payload started")
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
        refused = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True)
        assert refused.returncode != 0
        wait_for(lambda: job_says(sweep, "ok_run", "requeue is off: running on"), 60, "the job's answer to the warning")
        assert restarts(job_id) == 0 and job_of(sweep, "ok_run")["status"] == "RUNNING"
    finally:
        subprocess.run(["scancel", job_of(sweep, "ok_run").get("job_id", "0")])
        launch.communicate(timeout=120)
    assert job_of(sweep, "ok_run")["requeues"] == []
    assert job_of(sweep, "ok_run")["cause"] == "cancelled", "cancelled by a person (scancel)"
