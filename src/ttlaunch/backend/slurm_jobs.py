"""SLURM as a backend: jobs submitted with sbatch (through submitit), watched with one
`squeue -u <user>` for all jobs per poll and one batched `sacct` for those that left the queue
(through ttlaunch.scheduler.slurm), cancelled with scancel.

Without accounting, `sacct -c` (the job completion log) stands in, then the job's own result
file. Between polls, a job's end is seen sooner from the result file it writes as it ends,
confirmed by one `sacct` for the jobs that wrote one (`SlurmPoller.ended`).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from ttlaunch.backend.job_requests import LocalRequest, SlurmRequest, SubmissionSettings, slurm_request
from ttlaunch.backend.observation import Observation, modified, result_file, result_state
from ttlaunch.inputs.launch_inputs import LaunchInputs
from ttlaunch.inputs.schema import ComputeConfig, Executor
from ttlaunch.records.jobs_file import JobRecord
from ttlaunch.scheduler import slurm
from ttlaunch.scheduler.metrics import ComputeMetrics, Usage
from ttlaunch.scheduler.states import JobState

if TYPE_CHECKING:  # submitit loads only where jobs are submitted
    from submitit import Job

    from ttlaunch.scheduler.slurm import AccountingEntry

log = logging.getLogger(__name__)

# SLURM is shared by everyone: one squeue a minute unless the user asks otherwise.
SLURM_POLL_INTERVAL_S = 60.0

# A job whose result file is new is asked after in sacct at each look, until sacct shows it
# ended (SLURM records the end a moment after the job's last write) or for this long: then
# the next squeue has the last word (a requeued job, say, that wrote a result and went on).
END_CONFIRM_FOR_S = 30.0
# ... asked again this soon meanwhile.
END_CONFIRM_EVERY_S = 1.0
# When every job still active wrote its result (the sweep's last ends, which the user waits
# for), sooner: again after this, then after twice as long each time, up to END_CONFIRM_EVERY_S.
# slurmdbd records an end a tenth to half a second after the job's last write.
LAST_CONFIRM_FIRST_S = 0.1


class SlurmPoller:
    """One squeue + one sacct per poll. Remembers, once found out, that the cluster keeps
    no accounting, and says so once."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.disabled: set[int] = set()  # which of _ENDED_JOB_RECORDS the cluster does not keep
        self.notices: list[str] = []  # what the monitor should tell the user, once each
        self._results_seen: dict[str, float] = {}  # job name -> mtime of its result file, looked into
        self._confirming: dict[str, float] = {}  # job name -> when its new result file was first seen
        self._confirm_asked = float("-inf")  # when sacct was last asked after new result files
        # (log path, job id) -> its result file's path ("" for none), built once: at 10,000
        # jobs, building them was most of each end check's time.
        self._result_files: dict[tuple[str | None, str | None], str] = {}

    def observe(self, records: Mapping[str, JobRecord]) -> dict[str, Observation]:
        """Job name -> observation, for the given records (all with job ids).

        A job neither queued nor accounted was submitted moments ago (slurmctld tells
        slurmdbd asynchronously): it is pending, not lost.
        """
        queued = slurm.squeue(self.user)
        observed: dict[str, Observation] = {}
        gone: dict[str, str] = {}
        for name, record in records.items():
            entry = queued.get(str(record.job_id))
            if entry is not None:
                observed[name] = Observation(entry.state, restarts=entry.restarts)
            else:
                gone[name] = str(record.job_id)
        accounted = self._accounting(list(gone.values()))
        for name, job_id in gone.items():
            ended = accounted.get(job_id)
            if ended is not None:
                observed[name] = _accounted(ended)
            elif len(self.disabled) < len(_ENDED_JOB_RECORDS):
                observed[name] = Observation(JobState.PENDING)
            else:  # no record anywhere: the job's own result file is all there is
                observed[name] = Observation(result_state(records[name]) or JobState.FAILED)
        return observed

    @property
    def confirming(self) -> bool:
        """A job wrote its result and sacct does not show it ended yet: look again soon."""
        return bool(self._confirming)

    def ended(self, records: Mapping[str, JobRecord], now: float) -> dict[str, Observation]:
        """Between polls: job name -> observation of the jobs that ended since the last look,
        as far as their result files tell (one stat each) and one `sacct` of those confirms.
        `now` is the caller's clock, for END_CONFIRM_FOR_S. A job killed without writing its
        result is left to the next poll's squeue."""
        candidates: dict[str, tuple[JobRecord, float]] = {}
        for name, record in records.items():
            written = self._new_result(name, record)
            if written is not None:
                candidates[name] = (record, written)
        if not candidates:
            return {}
        self._confirm_asked = now
        accounted = self._accounting([str(record.job_id) for record, _ in candidates.values()])
        observed: dict[str, Observation] = {}
        for name, (record, written) in candidates.items():
            entry = accounted.get(str(record.job_id))
            if entry is not None and entry.state.terminal:
                observed[name] = _accounted(entry)
            elif now - self._confirming.setdefault(name, now) < END_CONFIRM_FOR_S:
                continue
            self._results_seen[name] = written
            self._confirming.pop(name, None)
        return observed

    def finished(self, records: Mapping[str, JobRecord], now: float) -> bool:
        """Whether every one of the jobs wrote a result not looked into yet, and one of them
        since the last look or, for those sacct did not show ended yet, the time to ask again
        has come (LAST_CONFIRM_FIRST_S, doubling). One stat while the sweep runs: it stops at
        the first job without one."""
        new = False
        for name, record in records.items():
            if self._new_result(name, record) is None:
                return False
            new = new or name not in self._confirming
        if new or not self._confirming:
            return new
        waited_s = self._confirm_asked - min(self._confirming.values())
        return now - self._confirm_asked >= min(max(waited_s, LAST_CONFIRM_FIRST_S), END_CONFIRM_EVERY_S)

    def _new_result(self, name: str, record: JobRecord) -> float | None:
        """When the job's result file was written, unless it was not or was looked into already."""
        key = (record.stdout, record.job_id)
        if key not in self._result_files:
            self._result_files[key] = str(result_file(record) or "")
        written = modified(self._result_files[key] or None)
        return written if written is not None and self._results_seen.get(name) != written else None

    def state_of(self, job_id: str) -> JobState | None:
        """squeue's state of one job while it is queued; once it left the queue, how accounting
        (or the completion log) says it ended, or None while that does not say (slurmdbd lags
        slurmctld, so for a moment it may still read RUNNING; or it never knew the job)."""
        queued = slurm.squeue(self.user).get(job_id)
        if queued is not None:
            return queued.state
        accounted = self._accounting([job_id]).get(job_id)
        return accounted.state if accounted is not None and accounted.state.terminal else None

    @property
    def accounting(self) -> bool:
        return _ACCOUNTING not in self.disabled

    def _accounting(self, job_ids: list[str]) -> dict[str, AccountingEntry]:
        """The first of the cluster's records of ended jobs that is kept; a disabled one is
        said once and not asked again."""
        for source, (ask, notice) in enumerate(_ENDED_JOB_RECORDS if job_ids else ()):
            if source in self.disabled:
                continue
            try:
                return ask(job_ids)
            except slurm.AccountingDisabled:
                self.disabled.add(source)
                self.notices.append(notice)
        return {}


_ACCOUNTING = 0  # SLURM's accounting (slurmdbd): the first of _ENDED_JOB_RECORDS
# Where ended jobs are read, in turn (each command looked up as it is asked), with what the user
# is told once it is found disabled.
_ENDED_JOB_RECORDS: tuple[tuple[Callable[[list[str]], dict[str, AccountingEntry]], str], ...] = (
    (
        lambda job_ids: slurm.sacct(job_ids),
        "SLURM accounting is disabled on this cluster: ended jobs are read from the job completion "
        "log (`sacct -c`), compute metrics are not available",
    ),
    (
        lambda job_ids: slurm.sacct_completed(job_ids),
        "the job completion log is disabled too: an ended job's state comes from its result file "
        "(COMPLETED or FAILED; no times, exit codes or metrics)",
    ),
)


def _accounted(entry: AccountingEntry) -> Observation:
    """What accounting says of a job that left the queue."""
    return Observation(
        entry.state, started=entry.start, completed=entry.end, elapsed_s=entry.elapsed_s, exit_code=entry.exit_code,
        restarts=entry.runs - 1,
    )


class SlurmBackend:
    """Jobs on SLURM (the contract: ttlaunch.backend.contract.JobBackend)."""

    name = Executor.slurm
    runner = "SLURM"
    poll_interval_s = SLURM_POLL_INTERVAL_S
    jobs_outlive_launch = True

    def __init__(self, user: str) -> None:
        self.poller = SlurmPoller(user)
        self.poll_command = f"squeue -u {user}"

    @property
    def accounting(self) -> bool:
        return self.poller.accounting

    @property
    def efficiency_reports(self) -> bool:
        return shutil.which("seff") is not None

    def usage(self, job_ids: Sequence[str]) -> dict[str, Usage]:
        return slurm.usage(job_ids)

    def efficiency(self, job_id: str) -> ComputeMetrics | None:
        try:
            return slurm.seff(job_id)
        except slurm.SchedulerCommandError:  # seff fails outright for a job it has no data of
            return None

    def ended_runs(self, job_id: str) -> list[JobState]:
        try:
            return [run.state for run in slurm.run_history(job_id)]
        except slurm.SchedulerCommandError:
            return []

    def state_of(self, job_id: str) -> JobState | None:
        return self.poller.state_of(job_id)

    def nodes_of(self, job_id: str) -> list[str]:
        try:
            return slurm.nodes_of(job_id)
        except slurm.SchedulerCommandError as err:  # the exclusion waits for a node list SLURM can give
            log.warning("the nodes job %s ran on are not known: %s", job_id, err)
            return []

    def partition_size(self, partition: str | None) -> int | None:
        try:
            return slurm.partition_size(partition) if partition else None
        except slurm.SchedulerCommandError as err:
            log.warning("the size of partition %s is not known: %s", partition, err)
            return None

    def check_monitoring(self, monitored: bool, detach: bool) -> None:
        """Anything goes: its jobs run on, watched or not."""

    def check_job(self, inputs: LaunchInputs, compute: ComputeConfig, argv: Sequence[str]) -> None:
        """Nothing to check from here: its nodes see their own filesystems, SLURM checks the request."""

    def request(self, name: str, compute: ComputeConfig, settings: SubmissionSettings) -> SlurmRequest:
        return slurm_request(
            name, compute, settings.requeue, settings.user, settings.signal_delay_s, settings.compute_source,
            settings.submitit, settings.submitit_timeouts,
        )

    def submit(
        self, name: str, folder: Path, request: SlurmRequest | LocalRequest, job_callable: Callable[..., object],
        args: Sequence[object],
    ) -> Job[object]:
        assert isinstance(request, SlurmRequest)  # made by this backend's `request`
        # submitit loads only where jobs are submitted (a monitor alone never needs it).
        from submitit.slurm.slurm import SlurmExecutor

        for note in request.notes:
            log.info("%s: %s", name, note)
        # submitit's own count of timeouts: a run's are counted against its RequeuePolicy in
        # requeues.json alone (ttlaunch.job.requeue); submitit still requeues a preemption
        # that comes before the task function has started.
        executor = SlurmExecutor(folder=folder, max_num_timeout=request.submitit_timeouts)
        executor.update_parameters(**request.submitit_parameters())
        return executor.submit(job_callable, *args)

    def script(self, name: str, folder: Path, request: SlurmRequest | LocalRequest, payload: str) -> tuple[str, str]:
        assert isinstance(request, SlurmRequest)
        for note in request.notes:  # what the user's sbatch flags replace, as a launch says it
            log.info("%s: %s", name, note)
        return f"{name}.sbatch", f"{request.script(folder)}# payload: {payload}\n"

    def observe(self, records: Mapping[str, JobRecord]) -> dict[str, Observation]:
        return self.poller.observe(records)

    def end_check_every_s(self, check_s: float) -> float | None:
        if check_s <= 0:
            return None
        return min(check_s, END_CONFIRM_EVERY_S) if self.poller.confirming else check_s

    def ended(self, records: Mapping[str, JobRecord], now: float) -> dict[str, Observation]:
        return self.poller.ended(records, now)

    def finished(self, records: Mapping[str, JobRecord], now: float) -> bool:
        return self.poller.finished(records, now)

    def take_notices(self) -> list[str]:
        notices = list(self.poller.notices)
        self.poller.notices.clear()
        return notices

    def cancel(self, record: JobRecord) -> None:
        if not record.job_id:
            raise RuntimeError(f"{record.name} has no job id to cancel")
        slurm.cancel(record.job_id)

    def stoppable(self, names: Sequence[str]) -> list[str]:
        return []  # SLURM jobs run on without the launch that submitted them

    def stop(self, names: Sequence[str], timeout_s: float) -> None:
        """Nothing: `stoppable` names no SLURM job."""
