"""This machine as a backend: jobs of submitit's local executor, each a process session of its
own (ttlaunch.backend.local_executor) whose job id is its controller's pid. They are children of
the launch that started it: watched through their submitit handles (a job of an earlier launch:
through its process and result file), stopped with the launch."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from ttlaunch.backend.job_requests import LocalRequest, SlurmRequest, SubmissionSettings, local_request
from ttlaunch.backend.observation import Observation, result_state, result_time
from ttlaunch.base.errors import InputError
from ttlaunch.inputs.launch_inputs import LaunchInputs
from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.inputs.schema import ComputeConfig, Executor
from ttlaunch.inputs.torchtune_configs import model_dir
from ttlaunch.records.jobs_file import JobRecord
from ttlaunch.scheduler.metrics import ComputeMetrics, Usage
from ttlaunch.scheduler.states import JobState, parse_state

if TYPE_CHECKING:  # submitit loads only where jobs are submitted
    from submitit import Job

# Local jobs are children of ours: looking at them costs nothing.
LOCAL_POLL_INTERVAL_S = 2.0
# How often the wait between polls looks at the processes of running local jobs (a system call each).
LOCAL_END_CHECK_S = 0.2


class LocalBackend:
    """Jobs on this machine (the contract: ttlaunch.backend.contract.JobBackend)."""

    name = Executor.local
    runner = "the local executor"
    poll_command = "submitit local jobs"
    poll_interval_s = LOCAL_POLL_INTERVAL_S
    jobs_outlive_launch = False
    accounting = False  # no sacct for processes
    efficiency_reports = False

    def __init__(self, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.handles: dict[str, Job[object]] = {}  # submitit handles of the jobs this launch started
        self._ends_told: set[str] = set()  # jobs whose end `ended` or a poll reported: once each
        self._sleep, self._clock = sleep, clock

    def check_monitoring(self, monitored: bool, detach: bool) -> None:
        """Its jobs are children of the launching process, which must watch them to the end."""
        if not monitored:
            raise InputError(
                "hydra.callbacks", "monitor", "local jobs need the monitor (it was switched off); use a SLURM preset"
            )
        if detach:
            raise InputError(
                "hydra.callbacks.monitor", "detach", "local jobs stop with the launching process; detach needs a SLURM preset"
            )

    def check_job(self, inputs: LaunchInputs, compute: ComputeConfig, argv: Sequence[str]) -> None:
        """A job is one process here: several nodes or tasks need SLURM. A torchtune job trains
        from a model on this machine: one that is not there is said now, not deep in the job
        (unless setup or prepare commands may still make it)."""
        if compute.nodes > 1 or compute.tasks_per_node > 1:
            raise InputError(
                inputs.compute_source, "compute.nodes" if compute.nodes > 1 else "compute.tasks_per_node",
                f"{compute.nodes} node(s) x {compute.tasks_per_node} task(s) need a SLURM preset; locally a job is one process",
            )
        if inputs.payload_kind is not PayloadKind.torchtune or inputs.payload.setup or inputs.payload.prepare:
            return
        directory = model_dir(argv)
        if directory is not None and not Path(directory).expanduser().is_dir():
            config = argv[list(argv).index("--config") + 1]
            raise InputError(
                inputs.payload_source, "checkpointer.checkpoint_dir",
                f"{directory} does not exist: {config} trains from the model there. Download it there, or point at "
                """yours: 'payload.overrides=["checkpointer.checkpoint_dir=DIR","tokenizer.path=DIR/original/tokenizer.model"]'""",
            )

    def request(self, name: str, compute: ComputeConfig, settings: SubmissionSettings) -> LocalRequest:
        return local_request(name, compute, settings.submitit)

    def submit(
        self, name: str, folder: Path, request: SlurmRequest | LocalRequest, job_callable: Callable[..., object],
        args: Sequence[object],
    ) -> Job[object]:
        assert isinstance(request, LocalRequest)  # made by this backend's `request`
        # submitit loads only where jobs are submitted (a monitor alone never needs it).
        from ttlaunch.backend.local_executor import local_executor

        job = local_executor(folder, request).submit(job_callable, *args)
        self.handles[name] = job
        self._ends_told.discard(name)  # the same name again (a restart): a new process to watch
        return job

    def script(self, name: str, folder: Path, request: SlurmRequest | LocalRequest, payload: str) -> tuple[str, str]:
        return f"{name}.sh", f"# local job {name}\n{payload}\n"

    def usage(self, job_ids: Sequence[str]) -> dict[str, Usage]:
        return {}  # never asked: no accounting

    def efficiency(self, job_id: str) -> ComputeMetrics | None:
        return None  # never asked: no efficiency reports

    def ended_runs(self, job_id: str) -> list[JobState]:
        return []  # a local job is never requeued

    def state_of(self, job_id: str) -> JobState | None:
        return None  # only SLURM runs a monitor job

    def nodes_of(self, job_id: str) -> list[str]:
        return []  # this machine: no node to leave out

    def partition_size(self, partition: str | None) -> int | None:
        return None

    def observe(self, records: Mapping[str, JobRecord]) -> dict[str, Observation]:
        observed = {name: local_observation(record, self.handles.get(name)) for name, record in records.items()}
        self._ends_told.update(name for name, seen in observed.items() if seen.state.terminal and name in self.handles)
        return observed

    def end_check_every_s(self, check_s: float) -> float | None:
        """Only while a job this launch started has an end not told yet (it runs, or exited
        since the last look): its handle says when it exits, at no cost, so the poll that
        records it need not wait. (A job that ended unrecorded, its end unreadable, must not
        turn the wait into a busy loop: an end is told once.)"""
        watching = any(name not in self._ends_told for name in self.handles)
        return LOCAL_END_CHECK_S if check_s > 0 and watching else None

    def finished(self, records: Mapping[str, JobRecord], now: float) -> bool:
        return False  # its end check, every LOCAL_END_CHECK_S while a job runs, costs nothing already

    def ended(self, records: Mapping[str, JobRecord], now: float) -> dict[str, Observation]:
        """Jobs whose process exited, each told once: one whose end could not be recorded is
        the polls' to try again, not a busy loop's."""
        exited = [
            name for name in records
            if name in self.handles and name not in self._ends_told and self.handles[name].state != "RUNNING"
        ]
        self._ends_told.update(exited)
        return {name: local_observation(records[name], self.handles[name]) for name in exited}

    def take_notices(self) -> list[str]:
        return []

    def cancel(self, record: JobRecord) -> None:
        handle = self.handles.get(record.name)
        if handle is None:
            raise RuntimeError(f"no way to cancel {record.name}: a local job of an earlier launch")
        stop_local_job(str(handle.job_id))

    def stoppable(self, names: Sequence[str]) -> list[str]:
        return [name for name in names if name in self.handles]

    def stop(self, names: Sequence[str], timeout_s: float) -> None:
        """SIGTERM to each, then wait; SIGKILL to a job whose payload ignored it past the grace period."""
        stopping = [self.handles[name] for name in names]
        for job in stopping:
            stop_local_job(str(job.job_id))
        deadline = self._clock() + timeout_s
        while any(not job.done() for job in stopping) and self._clock() < deadline:
            self._sleep(0.2)
        for job in stopping:
            if not job.done():
                stop_local_job(str(job.job_id), kill=True)


def stop_local_job(job_id: str, kill: bool = False) -> None:
    """Ask a local job to stop: SIGTERM to its controller, which passes it to its tasks; each
    task stops its payload with a grace period (ttlaunch.job.task). `kill`: SIGKILL to the job's
    whole session, for a job that did not stop when asked. Gone already: nothing to do."""
    try:
        if kill:
            os.killpg(int(job_id), signal.SIGKILL)
        else:
            os.kill(int(job_id), signal.SIGTERM)
    except ProcessLookupError:
        pass


def local_observation(record: JobRecord, job: Job[object] | None) -> Observation:
    """A job of submitit's local executor: from its handle, or, for a job an earlier launch
    started, from its process (its job id is the pid) and its result file. It started when
    it was submitted: the local executor starts a job's process at once."""
    if job is not None:
        raw = str(job.state)
        if raw == "FINISHED":  # success or failure is in the job's result, written as it ended
            ended = result_time(record)
            if job.exception() is None:
                return Observation(JobState.COMPLETED, started=record.submitted, completed=ended, exit_code="0:0")
            if record.stopped_by_ttlaunch:  # it ended because we asked it to
                return Observation(JobState.CANCELLED, started=record.submitted, completed=ended)
            # The payload's exit code is read from its stderr.
            return Observation(JobState.FAILED, started=record.submitted, completed=ended)
        return Observation(parse_state(raw), started=record.submitted)
    if _process_alive(str(record.job_id)):
        return Observation(JobState.RUNNING, started=record.submitted)
    # Gone without a result: it was stopped with the launcher that started it.
    return Observation(result_state(record) or JobState.CANCELLED, started=record.submitted, completed=result_time(record))


def _process_alive(pid: str) -> bool:
    """A live process with this pid that runs a submitit job (not a recycled pid)."""
    try:
        command = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return b"submitit" in command
