"""The monitor on the real test cluster: interrupted launchers, a controller that goes away,
a job over its time limit, detach and status, a cluster without accounting."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from ttlaunch.scheduler.figure_readers import duration_s

from support import REPO, TEST_CONFIGS, cli_invocation, submissions_by_name, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

ON_CLUSTER = ["compute=testcluster/cpu_1x", "hydra.callbacks.monitor.poll_interval_s=1"]
CLUSTER_STATE = Path(os.environ.get("TTLAUNCH_CLUSTER_DIR", "/var/tmp/ttlaunch-testcluster"))


def stamp4(seconds: int, *more: str) -> list[str]:
    """Four runs (s1..s4) whose payload sleeps `seconds`."""
    return [
        "--config-dir", TEST_CONFIGS, "experiment=stamp4", *ON_CLUSTER, "payload=command",
        f"payload.command=[sleep,'{seconds}']", *more,
    ]


def sweep_of(tmp_path: Path, name: str = "stamp4") -> Path:
    return tmp_path / "work" / "ttlaunch_sweeps" / name


def jobs_of(sweep: Path) -> dict:
    try:
        return json.loads((sweep / "jobs.json").read_text())["jobs"]
    except (OSError, ValueError):  # not written yet
        return {}


def start_launch(tmp_path: Path, *args: str) -> subprocess.Popen:
    command, env = cli_invocation(tmp_path, *args)
    # A process started in the background inherits SIGINT ignored; a terminal's is not.
    return subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def last_entry(log: str) -> str:
    return log.strip().split("\n\n")[-1]


def test_kill_9_mid_sweep_then_the_same_command_submits_each_run_exactly_once(run_cli, tmp_path: Path):
    began = datetime.now().replace(microsecond=0)
    args = stamp4(6, "stagger=fixed_delay", "stagger.seconds=2")
    sweep = sweep_of(tmp_path)
    first = start_launch(tmp_path, *args)
    wait_for(lambda: sum(bool(job.get("job_id")) for job in jobs_of(sweep).values()) >= 2, 120, "two submissions")

    second = run_cli(*args, timeout=120)  # while the first one holds the sweep
    assert second.returncode == 2, second.stderr[-2000:]
    assert "is being launched or monitored already" in second.stderr and f"pid {first.pid}" in second.stderr

    first.kill()
    first.communicate(timeout=30)
    recorded_before = {name for name, job in jobs_of(sweep).items() if job.get("job_id")}
    assert 2 <= len(recorded_before) < 4, "killed mid-sweep"

    again = run_cli(*args, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    jobs = jobs_of(sweep)
    assert sorted(jobs) == ["s1", "s2", "s3", "s4"] and all(job["status"] == "COMPLETED" for job in jobs.values())
    assert submissions_by_name(jobs, began) == {"s1": 1, "s2": 1, "s3": 1, "s4": 1}
    log = (sweep / "run-torchtune.log").read_text()
    assert f"{len(recorded_before)} still queued or running" in log.split("IDENTIFY_RUNS")[-1]
    assert last_entry(log).split("\n")[0].endswith("ALL_COMPLETE: Monitoring finished")
    assert "Summary: 4 jobs finished - 4 COMPLETED, 0 FAILED" in last_entry(log)


def _slurmctld(action: str) -> None:
    if action == "stop":
        pid = int((CLUSTER_STATE / "run" / "slurmctld.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, "slurmctld to stop")
    else:
        subprocess.run([str(REPO / "scripts" / "testcluster.sh"), "start"], check=True, capture_output=True, timeout=300)


@pytest.mark.skipif(os.geteuid() != 0, reason="stopping slurmctld needs root")
def test_the_monitor_survives_slurmctld_going_away_for_several_polls(tmp_path: Path):
    sweep = sweep_of(tmp_path)
    launch = start_launch(
        tmp_path, *stamp4(8, "hydra.callbacks.monitor.alert_after_failures=2")
    )
    try:
        wait_for(lambda: [job["status"] for job in jobs_of(sweep).values()].count("RUNNING") == 4, 120, "all running")
        _slurmctld("stop")
        # squeue gives up on a missing controller after ~9 s: two failed polls (the alert after
        # the second), and the jobs end meanwhile.
        log_path = sweep / "run-torchtune.log"
        wait_for(lambda: "Alert: repeated failures" in log_path.read_text(), 120, "two failed polls and the alert")
    finally:
        _slurmctld("start")
    _, stderr = launch.communicate(timeout=300)
    assert launch.returncode == 0, stderr[-3000:]
    log = (sweep / "run-torchtune.log").read_text()
    assert log.count("POLL_FAILED: Querying SLURM failed") >= 2
    assert "Unable to contact slurm controller" in log
    assert log.count("Alert: repeated failures") == 1
    assert all(job["status"] == "COMPLETED" for job in jobs_of(sweep).values())
    assert "Summary: 4 jobs finished - 4 COMPLETED, 0 FAILED" in last_entry(log)


def test_a_job_over_its_time_limit_ends_timeout_with_an_exceeded_metrics_entry(run_cli, tmp_path: Path):
    result = run_cli(
        "--config-dir", TEST_CONFIGS, "experiment=probe_ok", *ON_CLUSTER, "compute.timeout_min=1",
        "payload=command", "payload.command=[sleep,'600']", "hydra.launcher.signal_delay_s=5",
        "hydra.callbacks.monitor.metrics_retry_s=5", timeout=400,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    (job,) = jobs_of(sweep_of(tmp_path, "probe_ok")).values()
    assert (job["status"], job["cause"], job["restarts"]) == ("TIMEOUT", "time_limit", []), "remediation leaves a time limit as it is"
    log = (sweep_of(tmp_path, "probe_ok") / "run-torchtune.log").read_text()
    metrics = log.split("COMPUTE_METRICS: ok_run\n")[1].split("\n\n")[0]
    assert f"Job ID: {job['job_id']}" in metrics and "/ 00:01:00 (**EXCEEDED**)" in metrics
    assert "Warning: time limit exceeded" in metrics
    assert 60 <= duration_s(job["metrics"]["wall_time"]) <= 150, job["metrics"]


def test_detach_returns_at_once_and_status_follows_to_the_end(run_cli, tmp_path: Path):
    began = time.monotonic()
    result = run_cli(*stamp4(8, "detach=true"), timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert time.monotonic() - began < 8 + 10, "the launch waited for the jobs"
    sweep = sweep_of(tmp_path)
    monitor_job = json.loads((sweep / "jobs.json").read_text())["monitor_job_id"]
    assert f"detached: monitor job {monitor_job} (ttlaunch-monitor:stamp4)" in result.stderr
    assert f"ttlaunch status {sweep}" in result.stderr
    assert not any(job["status"] == "COMPLETED" for job in jobs_of(sweep).values())

    status = subprocess.run([sys.executable, "-m", "ttlaunch.status", str(sweep)], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].startswith("stamp4: 4 jobs - ") and lines[1].split() == ["Run", "Status", "Job", "ID", "Started", "Elapsed"]
    assert sorted(line.split()[0] for line in lines[2:6]) == ["s1", "s2", "s3", "s4"]
    assert f"monitor job {monitor_job} (ttlaunch-monitor:stamp4): " in status.stdout

    follow = subprocess.run(
        [sys.executable, "-m", "ttlaunch.status", str(sweep), "--follow", "--poll-interval", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert follow.returncode == 0, follow.stderr[-3000:]
    assert all(job["status"] == "COMPLETED" for job in jobs_of(sweep).values())
    assert "Summary: 4 jobs finished - 4 COMPLETED, 0 FAILED" in last_entry((sweep / "run-torchtune.log").read_text())
    assert (sweep / "summary.md").is_file()


def test_ctrl_c_stops_monitoring_leaves_slurm_jobs_running_and_says_how_to_reattach(tmp_path: Path):
    sweep = sweep_of(tmp_path)
    launch = start_launch(tmp_path, *stamp4(8))
    wait_for(lambda: len(jobs_of(sweep)) == 4 and all(job.get("job_id") for job in jobs_of(sweep).values()), 120, "submissions")
    launch.send_signal(signal.SIGINT)
    _, stderr = launch.communicate(timeout=60)
    assert launch.returncode == 130
    assert f"Re-attach with `python -m ttlaunch.status {sweep} --follow`" in stderr
    ids = {job["job_id"] for job in jobs_of(sweep).values()}
    queued = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True).stdout.split()
    assert ids <= set(queued), "the SLURM jobs were cancelled"
    follow = subprocess.run(
        [sys.executable, "-m", "ttlaunch.status", str(sweep), "--follow", "--poll-interval", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert follow.returncode == 0, follow.stderr[-3000:]
    assert all(job["status"] == "COMPLETED" for job in jobs_of(sweep).values())


def test_without_accounting_the_monitor_says_so_once_and_still_sees_jobs_end(run_cli, tmp_path: Path, monkeypatch):
    conf = Path("/etc/slurm/slurm.conf").read_text()
    no_accounting = tmp_path / "slurm.conf"
    no_accounting.write_text(conf.replace("AccountingStorageType=accounting_storage/slurmdbd", "AccountingStorageType=accounting_storage/none"))
    monkeypatch.setenv("SLURM_CONF", str(no_accounting))
    result = run_cli(
        "--config-dir", TEST_CONFIGS, "experiment=probe", *ON_CLUSTER, timeout=300
    )
    assert result.returncode == 1, result.stderr[-3000:]  # bad_run fails, as it should
    jobs = jobs_of(sweep_of(tmp_path, "probe"))
    assert (jobs["ok_run"]["status"], jobs["bad_run"]["status"]) == ("COMPLETED", "FAILED")
    assert jobs["bad_run"]["exit_code"] == "1:0", "the job completion log has exit codes"
    log = (sweep_of(tmp_path, "probe") / "run-torchtune.log").read_text()
    assert log.count("SLURM accounting is disabled on this cluster") == 1
    assert "COMPUTE_METRICS" not in log


def test_with_the_monitor_switched_off_the_launch_submits_records_and_returns(run_cli, tmp_path: Path):
    result = run_cli(*stamp4(3, "~hydra.callbacks.monitor"), timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = sweep_of(tmp_path)
    jobs = jobs_of(sweep)
    assert len(jobs) == 4 and all(job["job_id"] for job in jobs.values())
    log = (sweep / "run-torchtune.log").read_text()
    assert "ALL_SUBMITTED" in log and "STATUS_CHECK" not in log and "ALL_COMPLETE" not in log
    follow = subprocess.run(
        [sys.executable, "-m", "ttlaunch.status", str(sweep), "--follow", "--poll-interval", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert follow.returncode == 0, follow.stderr[-3000:]
    assert "Summary: 4 jobs finished - 4 COMPLETED, 0 FAILED" in last_entry((sweep / "run-torchtune.log").read_text())
