"""The backend contract is closed: a backend that implements JobBackend alone, and shares no
code with SLURM's or the local one, runs a whole sweep of ttlaunch's own app, submitter and
monitor included: submissions, polls, a requeue's reason and the compute metrics all go
through it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Mapping, Sequence

from ttlaunch.backend.contract import JobBackend
from ttlaunch.backend.job_requests import LocalRequest, SlurmRequest, SubmissionSettings, local_request
from ttlaunch.backend.observation import Observation
from ttlaunch.inputs.launch_inputs import LaunchInputs, read_inputs
from ttlaunch.inputs.schema import ComputeConfig, Executor
from ttlaunch.job.job_callable import PrePickledJob
from ttlaunch.job.stagger import StartTogether
from ttlaunch.monitor.settings import MonitorSettings
from ttlaunch.monitor.sweep_monitor import Monitor
from ttlaunch.records.jobs_file import JobRecord
from ttlaunch.records.ledger import Ledger
from ttlaunch.scheduler.metrics import ComputeMetrics, Usage
from ttlaunch.scheduler.states import JobState
from ttlaunch.submit.submitter import Submitter, run_submission


class DictScheduler:
    """A scheduler kept in a dict: each job is pending at the first look, running at the
    next, then requeued once (preempted) or ended as its script says."""

    name = Executor.slurm  # what jobs.json records (its executors are an enum); nothing asks SLURM anything
    runner = "the fake queue"
    poll_command = "a look at the dict"
    poll_interval_s = 0.0
    jobs_outlive_launch = True
    accounting = True
    efficiency_reports = True

    def __init__(self, folder: Path, endings: Mapping[str, JobState]) -> None:
        self.folder = folder
        self.endings = endings  # job name -> how it ends (COMPLETED by default)
        self.looks: dict[str, int] = {}  # job id -> looks so far
        self.names: dict[str, str] = {}  # job id -> name
        self.asked: list[str] = []  # what the sweep asked of it, in order

    def check_monitoring(self, monitored: bool, detach: bool) -> None:
        self.asked.append("check_monitoring")

    def check_job(self, inputs: LaunchInputs, compute: ComputeConfig, argv: Sequence[str]) -> None:
        self.asked.append("check_job")

    def request(self, name: str, compute: ComputeConfig, settings: SubmissionSettings) -> LocalRequest:
        return local_request(name, compute)

    def submit(
        self, name: str, folder: Path, request: SlurmRequest | LocalRequest, job_callable: Callable[..., Any],
        args: Sequence[object],
    ) -> Any:
        job_id = str(100 + len(self.names))
        self.names[job_id], self.looks[job_id] = name, 0
        log = self.folder / f"{job_id}.log"
        log.write_text("")
        return SimpleNamespace(job_id=job_id, paths=SimpleNamespace(stdout=log, stderr=log))

    def script(self, name: str, folder: Path, request: SlurmRequest | LocalRequest, payload: str) -> tuple[str, str]:
        return f"{name}.txt", payload

    def observe(self, records: Mapping[str, JobRecord]) -> dict[str, Observation]:
        self.asked.append("observe")
        return {name: self._look(str(record.job_id)) for name, record in records.items()}

    def _look(self, job_id: str) -> Observation:
        self.looks[job_id] += 1
        looks, ending = self.looks[job_id], self.endings.get(self.names[job_id], JobState.COMPLETED)
        if looks == 1:
            return Observation(JobState.PENDING)
        if looks == 2:
            return Observation(JobState.RUNNING, started="2026-12-07 08:00:00", restarts=0)
        if ending is JobState.PREEMPTED and looks == 3:  # requeued by the scheduler, runs again
            return Observation(JobState.RUNNING, restarts=1)
        final = JobState.COMPLETED if ending is JobState.PREEMPTED else ending
        return Observation(
            final, started="2026-12-07 08:00:00", completed="2026-12-07 08:01:40", elapsed_s=100,
            exit_code="0:0" if final is JobState.COMPLETED else "1:0",
        )

    def end_check_every_s(self, check_s: float) -> float | None:
        return None

    def ended(self, records: Mapping[str, JobRecord], now: float) -> dict[str, Observation]:
        return {}

    def finished(self, records: Mapping[str, JobRecord], now: float) -> bool:
        return False

    def take_notices(self) -> list[str]:
        return []

    def usage(self, job_ids: Sequence[str]) -> dict[str, Usage]:
        self.asked.append("usage")
        figures = ComputeMetrics(
            source="fake", wall_time="00:01:40", cpu_efficiency=75.0, memory_used_mb=512.0, memory_requested_mb=1024.0
        )
        return {job_id: (figures, 3600) for job_id in job_ids}

    def efficiency(self, job_id: str) -> ComputeMetrics | None:
        self.asked.append("efficiency")
        return None

    def ended_runs(self, job_id: str) -> list[JobState]:
        self.asked.append("ended_runs")
        return [JobState.PREEMPTED, JobState.COMPLETED]

    def state_of(self, job_id: str) -> JobState | None:
        return None

    def nodes_of(self, job_id: str) -> list[str]:
        return []

    def partition_size(self, partition: str | None) -> int | None:
        return None

    def cancel(self, record: JobRecord) -> None:
        self.asked.append(f"cancel {record.name}")

    def stoppable(self, names: Sequence[str]) -> list[str]:
        return []

    def stop(self, names: Sequence[str], timeout_s: float) -> None:
        """Nothing to stop: its jobs run on."""


def test_the_contract_lists_every_member_a_backend_needs_and_the_fake_has_them_all():
    members = {name for name in vars(JobBackend) if not name.startswith("_")} | set(JobBackend.__annotations__)
    assert {"submit", "observe", "usage", "efficiency", "ended_runs", "state_of", "check_job", "jobs_outlive_launch", "nodes_of", "partition_size"} <= members
    assert sorted(name for name in members if not hasattr(DictScheduler, name)) == []


def test_a_whole_sweep_runs_on_a_third_backend_that_implements_the_contract_alone(compose_config, tmp_path: Path):
    cfg = compose_config("experiment=cap_4L")
    inputs = read_inputs(cfg, cfg.hydra)
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    ledger = Ledger.open(sweep, "cap_4L")
    names = ["rank8_lr1e-5", "rank8_lr5e-5", "rank16_lr1e-5"]
    backend = DictScheduler(tmp_path, {"rank8_lr5e-5": JobState.FAILED, "rank16_lr1e-5": JobState.PREEMPTED})
    settings = SubmissionSettings(inputs.requeue, inputs.user, 120, inputs.compute_source)
    submitter = Submitter(ledger, settings, backend, PrePickledJob(print, None))
    planned = [run_submission(inputs, sweep, index, [f"run_name={name}", f"hydra.job.name={name}"]) for index, name in enumerate(names)]
    assert submitter.submit_all(planned, StartTogether()) == names

    monitor = Monitor(ledger, MonitorSettings(poll_interval_s=0.01, live="off", metrics_retry_s=0), backend, sleep=lambda s: None)
    monitor.follow()

    jobs = json.loads((sweep / "jobs.json").read_text())["jobs"]
    assert {name: job["status"] for name, job in jobs.items()} == {
        "rank8_lr1e-5": "COMPLETED", "rank8_lr5e-5": "FAILED", "rank16_lr1e-5": "COMPLETED",
    }
    assert sorted(job["job_id"] for job in jobs.values()) == ["100", "101", "102"]
    requeued = jobs["rank16_lr1e-5"]
    assert requeued["attempt"] == 2 and requeued["requeues"][0]["reason"] == "preempted", "the reason is the backend's"
    assert jobs["rank8_lr1e-5"]["metrics"]["cpu_efficiency"] == 75.0, "metrics through the backend's usage"
    assert {"usage", "efficiency", "ended_runs"} <= set(backend.asked)
    log = (sweep / "run-torchtune.log").read_text()
    assert "STATUS_CHECK: Polling\nCommand: a look at the dict" in log and "ALL_COMPLETE" in log
    assert (sweep / "summary.md").is_file()
