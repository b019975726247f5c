"""What the scheduler says about a sweep's jobs, one poll at a time.

SLURM: one `squeue -u <user>` for all jobs, one batched `sacct` for those that left the
queue (through ttlaunch.scheduler.slurm). Without accounting, `sacct -c` (the job completion log)
stands in, then the job's own result file. Between polls, a job's end is seen sooner from
the result file it writes as it ends, confirmed by one `sacct` for the jobs that wrote one
(`SlurmPoller.ended`). Local jobs: submitit's job handle, or for a job of an earlier
launch, its process and result file.
"""

from __future__ import annotations

import datetime as dt
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ttlaunch.base.times import timestamp
from ttlaunch.records.jobs_file import JobRecord
from ttlaunch.scheduler import slurm
from ttlaunch.scheduler.states import JobState, parse_state
from ttlaunch.scheduler.submitit_files import result_path

if TYPE_CHECKING:
    from ttlaunch.scheduler.slurm import AccountingEntry

log = logging.getLogger(__name__)

# A job whose result file is new is asked after in sacct at each look, until sacct shows it
# ended (SLURM records the end a moment after the job's last write) or for this long: then
# the next squeue has the last word (a requeued job, say, that wrote a result and went on).
END_CONFIRM_FOR_S = 30.0
# ... asked again this soon meanwhile.
END_CONFIRM_EVERY_S = 1.0


@dataclass(frozen=True)
class Observation:
    """What one poll learnt of a job; times and exit code when accounting has them."""

    state: JobState
    started: str | None = None
    completed: str | None = None
    elapsed_s: int | None = None
    exit_code: str | None = None
    # Requeues so far: squeue's count while the job is queued, accounting's runs once it left
    # (a requeue between two polls is counted when the job ends).
    restarts: int | None = None


def result_file(record: JobRecord) -> Path | None:
    """submitit's result pickle of the job, written when its function returned or raised."""
    if not (record.stdout and record.job_id):
        return None
    return result_path(Path(record.stdout).parent, str(record.job_id))


def result_state(record: JobRecord) -> JobState | None:
    """COMPLETED or FAILED from the job's result file; None when it left none."""
    path = result_file(record)
    if path is None or not path.is_file():
        return None
    try:
        with path.open("rb") as handle:
            outcome = pickle.load(handle)[0]
    except Exception:  # a truncated file: the job died while writing it
        return None
    return JobState.COMPLETED if outcome == "success" else JobState.FAILED


class SlurmPoller:
    """One squeue + one sacct per poll. Remembers, once found out, that the cluster keeps
    no accounting, and says so once."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.accounting = True
        self.completion_log = True
        self.notices: list[str] = []  # what the monitor should tell the user, once each
        self._results_seen: dict[str, float] = {}  # job name -> mtime of its result file, looked into
        self._confirming: dict[str, float] = {}  # job name -> when its new result file was first seen

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
            entry = accounted.get(job_id)
            if entry is not None:
                observed[name] = _accounted(entry)
            elif self.accounting or self.completion_log:
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
            written = _mtime(result_file(record))
            if written is not None and self._results_seen.get(name) != written:
                candidates[name] = (record, written)
        if not candidates:
            return {}
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

    def _accounting(self, job_ids: list[str]) -> dict[str, Any]:
        if not job_ids:
            return {}
        if self.accounting:
            try:
                return slurm.sacct(job_ids)
            except slurm.AccountingDisabled:
                self.accounting = False
                self.notices.append(
                    "SLURM accounting is disabled on this cluster: ended jobs are read from the job completion "
                    "log (`sacct -c`), compute metrics are not available"
                )
        if self.completion_log:
            try:
                return slurm.sacct_completed(job_ids)
            except slurm.AccountingDisabled:
                self.completion_log = False
                self.notices.append(
                    "the job completion log is disabled too: an ended job's state comes from its result file "
                    "(COMPLETED or FAILED; no times, exit codes or metrics)"
                )
        return {}


def _accounted(entry: AccountingEntry) -> Observation:
    """What accounting says of a job that left the queue."""
    return Observation(
        entry.state, started=entry.start, completed=entry.end, elapsed_s=entry.elapsed_s, exit_code=entry.exit_code,
        restarts=entry.runs - 1,
    )


def _mtime(path: Path | None) -> float | None:
    try:
        return path.stat().st_mtime if path is not None else None
    except OSError:
        return None


def local_observation(record: JobRecord, job: Any | None) -> Observation:
    """A job of submitit's local executor: from its handle, or, for a job an earlier launch
    started, from its process (its job id is the pid) and its result file. It started when
    it was submitted: the local executor starts a job's process at once."""
    if job is not None:
        raw = str(job.state)
        if raw == "FINISHED":  # success or failure is in the job's result, written as it ended
            ended = _result_time(record)
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
    return Observation(result_state(record) or JobState.CANCELLED, started=record.submitted, completed=_result_time(record))


def _result_time(record: JobRecord) -> str | None:
    """When the job wrote its result (it ended then); None without one."""
    written = _mtime(result_file(record))
    return timestamp(dt.datetime.fromtimestamp(written)) if written is not None else None


def _process_alive(pid: str) -> bool:
    """A live process with this pid that runs a submitit job (not a recycled pid)."""
    try:
        command = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return b"submitit" in command
