"""The monitor job's request and its hand-over, without a cluster."""

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from submitit.slurm.slurm import SlurmExecutor

from ttlaunch.backend.job_requests import SlurmRequest, SubmissionSettings
from ttlaunch.backend.slurm_jobs import SlurmBackend
from ttlaunch.base.errors import DamagedFile
from ttlaunch.inputs.schema import ComputeConfig, Executor, RequeueConfig, UserConfig
from ttlaunch.job.job_callable import PrePickledJob
from ttlaunch.monitor.settings import MonitorSettings
from ttlaunch.records.ledger import Ledger
from ttlaunch.scheduler import slurm
from ttlaunch.scheduler.states import JobState
from ttlaunch.submit import monitor_job
from ttlaunch.submit.monitor_job import MONITOR_TIMEOUTS, MonitorSession, hand_over, monitor_job_request

from support import cluster_without_accounting

# What the launch submitted with; the monitor job submits its evaluations and restarts with it.
JOB_CALLABLE = PrePickledJob(print, None)
GPU_PRESET = ComputeConfig(
    cluster="killarney", partition="gpubase_l40s_b2", gpus_per_node=4, gpu_type="l40s", cpus_per_task=16, mem_gb=240,
    timeout_min=180, nodes=2, additional_parameters={"exclusive": True},
)


def _session(settings: MonitorSettings = MonitorSettings()) -> MonitorSession:
    return MonitorSession(None, SubmissionSettings(RequeueConfig(), UserConfig(), 120, "compute=k"), settings, JOB_CALLABLE)


def test_the_monitor_job_asks_for_one_cpu_a_little_memory_no_gpu_and_may_be_requeued():
    backend = SlurmBackend("tester")
    request = monitor_job_request("ttlaunch-monitor:x", GPU_PRESET, _session(), backend)
    parameters = request.submitit_parameters()
    assert isinstance(request, SlurmRequest) and request.submitit_timeouts == MONITOR_TIMEOUTS, "it comes back by its checkpoint"
    assert parameters["partition"] == "gpubase_l40s_b2", "the preset's partition"
    assert (parameters["cpus_per_task"], parameters["mem"], parameters["nodes"], parameters["time"]) == (1, "1GB", 1, 1440)
    assert "gres" not in parameters and "gpus_per_node" not in parameters
    assert parameters["additional_parameters"] == {"requeue": True}, "no GPU job's extras, requeue allowed"
    assert parameters["job_name"] == "ttlaunch-monitor:x" and "setup" not in parameters

    settings = MonitorSettings(job_partition="cpu", job_mem_gb=0.5, job_timeout_min=60)
    parameters = monitor_job_request("m", GPU_PRESET, _session(settings), backend).submitit_parameters()
    assert (parameters["partition"], parameters["mem"], parameters["time"]) == ("cpu", "512MB", 60)


def test_a_monitor_job_still_queued_or_running_is_not_submitted_again(tmp_path: Path, monkeypatch):
    ledger = Ledger.open(tmp_path, "x")
    ledger.state.executor, ledger.state.monitor_job_id = "slurm", "41"
    backend = SlurmBackend("tester")
    monkeypatch.setattr(backend, "state_of", lambda job_id: JobState.PENDING)
    said = hand_over(ledger, _session(), backend, GPU_PRESET)
    assert said == f"detached: monitor job 41 still follows the sweep; look with `ttlaunch status {tmp_path}`"
    assert not (tmp_path / monitor_job.SESSION_NAME).exists() and ledger.state.monitor_job_id == "41"


def test_a_monitor_job_gone_from_the_queue_has_ended_even_while_accounting_still_says_running(monkeypatch):
    # slurmdbd lags slurmctld: for a moment after the job left squeue, sacct reads RUNNING.
    accounting = {"41": "RUNNING"}

    def cluster(argv, timeout=60):
        if argv[0] == "squeue":
            return ""
        return f"41|ttlaunch-monitor:x|{accounting['41']}|0:0|2026-11-24T01:00:00|2026-11-24T01:00:01|Unknown|00:00:06\n"

    monkeypatch.setattr(slurm, "execute", cluster)
    backend = SlurmBackend("tester")
    assert backend.state_of("41") is None, "ended, how not yet known: not a monitor that still follows"
    accounting["41"] = "CANCELLED by 0"
    assert backend.state_of("41") is JobState.CANCELLED


def test_on_a_cluster_without_accounting_the_monitor_jobs_end_is_read_from_the_completion_log(monkeypatch):
    asked: list[list[str]] = []
    ended = "41|ttlaunch-monitor:x|TIMEOUT|0:0|2026-11-24T01:00:00|2026-11-25T01:00:00|1-00:00:00|1-00:00:00\n"
    monkeypatch.setattr(slurm, "execute", cluster_without_accounting(ended, asked))
    backend = SlurmBackend("tester")
    assert backend.state_of("41") is JobState.TIMEOUT, "not 'SLURM did not answer'"
    assert asked == [["squeue", "-u"], ["sacct", "-D"], ["sacct", "-c"]]
    assert backend.take_notices()[0].startswith("SLURM accounting is disabled on this cluster")


def test_a_refused_monitor_job_is_logged_and_the_user_told_how_to_follow(tmp_path: Path, monkeypatch):
    def refuse(self, *args):
        raise RuntimeError("sbatch: error: invalid partition specified: nowhere")

    monkeypatch.setattr(SlurmExecutor, "submit", refuse)
    ledger = Ledger.open(tmp_path, "x")
    ledger.state.executor = Executor.slurm
    said = hand_over(ledger, _session(), SlurmBackend("tester"), GPU_PRESET)
    assert said.startswith("detached, but SLURM refused the monitor job (sbatch: error: invalid partition specified: nowhere)")
    assert f"python -m ttlaunch.status {tmp_path} --follow" in said and ledger.state.monitor_job_id is None
    log = (tmp_path / "run-torchtune.log").read_text()
    assert "SUBMIT_FAILED: ttlaunch-monitor:x\nError: sbatch: error: invalid partition" in log


def test_the_session_is_saved_with_its_format_and_read_back(tmp_path: Path):
    monitor_job.save_session(tmp_path, _session())
    loaded = monitor_job.load_session(tmp_path)
    assert loaded == _session()
    assert monitor_job.load_session(tmp_path / "elsewhere") is None, "attached sweeps have none"


def test_a_session_another_ttlaunch_saved_is_refused_in_one_line_that_says_what_to_do(tmp_path: Path, monkeypatch):
    ledger = Ledger.open(tmp_path, "x")
    ledger.save()
    monkeypatch.setattr(monitor_job, "__version__", "0.0.9")
    monitor_job.save_session(tmp_path, _session())
    monkeypatch.undo()
    with pytest.raises(DamagedFile, match=r"saved by ttlaunch 0\.0\.9 \(session format 3\); this is ttlaunch 0\.1\.0"):
        monitor_job.load_session(tmp_path)
    ttlaunch = Path(sys.executable).parent / "ttlaunch"
    follow = subprocess.run([str(ttlaunch), "status", str(tmp_path), "--follow"], capture_output=True, text=True, timeout=60)
    assert follow.returncode == 2 and len(follow.stderr.strip().splitlines()) == 1, follow.stderr
    assert "launch the same command again with this one: it re-attaches" in follow.stderr and "Traceback" not in follow.stderr

    (tmp_path / monitor_job.SESSION_NAME).write_bytes(pickle.dumps(_session()))  # before sessions had a header
    with pytest.raises(DamagedFile, match="saved by an older ttlaunch"):
        monitor_job.load_session(tmp_path)
    (tmp_path / monitor_job.SESSION_NAME).write_bytes(b"\x80\x04cut short")
    with pytest.raises(DamagedFile, match="cannot be read as a monitor session"):
        monitor_job.load_session(tmp_path)
