"""Compute metrics of the jobs that ended: one batched sacct for all jobs due, seff for each
(SEFF_CALLS_IN_FLIGHT at a time), one retry when accounting has no data yet, then the
figures sacct has. Each becomes a COMPUTE_METRICS entry and the job's `metrics` in jobs.json.

The commands run in worker threads while the monitor goes on (seff is a script of a tenth of
a second, seconds on a busy slurmdbd): a collection under way never delays the next look at
the queue or at the jobs' ends. Only the monitor's thread records what they found."""

from __future__ import annotations

from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Mapping, Union

from ttlaunch.backend.contract import JobBackend
from ttlaunch.monitor.poll_failures import Containment
from ttlaunch.records.ledger import Ledger
from ttlaunch.scheduler import metrics
from ttlaunch.scheduler.slurm import SchedulerCommandError
from ttlaunch.scheduler.states import JobState

# After these states a job used its allocation to the end (a pruned one to its rung): its
# compute metrics are collected.
METRICS_STATES = {JobState.COMPLETED, JobState.FAILED, JobState.TIMEOUT, JobState.PRUNED}
# An ended job's metrics are given up after this many unexpected failures to collect them.
MAX_METRICS_FAILURES = 3
# seff calls in flight at once (each waits on slurmdbd, not on this process).
SEFF_CALLS_IN_FLIGHT = 8
# With nothing else left to watch, how often the monitor looks whether a collection finished.
UNDER_WAY_LOOK_S = 0.05

Usages = Mapping[str, metrics.Usage]
# A command's answer, or the error its call raised (SchedulerCommandError: the scheduler refused).
UsageAnswer = Union[Usages, Exception]
SeffAnswer = Union[metrics.ComputeMetrics, None, Exception]  # None: seff has no data of the job


@dataclass
class PendingMetrics:
    """An ended job whose compute metrics are still to be collected."""

    due: float  # on the monitor's clock
    job: str
    tries: int = 1  # 2 once seff had no data yet at the first try
    failures: int = 0  # unexpected errors while collecting them


@dataclass
class Collection:
    """One collection under way: sacct for its jobs and, with seff installed, seff for each."""

    jobs: list[PendingMetrics]
    usages: Future[UsageAnswer]
    reports: dict[str, Future[SeffAnswer]] | None  # by job id

    def done(self) -> bool:
        return self.usages.done() and all(report.done() for report in (self.reports or {}).values())


def _usage(backend: JobBackend, job_ids: list[str]) -> UsageAnswer:
    try:
        return backend.usage(job_ids)
    except Exception as err:  # a refusal (recorded) or unexpected (each job's collection fails with it)
        return err


def _efficiency(backend: JobBackend, job_id: str) -> SeffAnswer:
    try:
        return backend.efficiency(job_id)
    except Exception as err:  # unexpected: that job's collection fails (and is retried)
        return err


class MetricsCollector:
    """The ended jobs whose metrics are still to come, and their collection when due."""

    def __init__(
        self, ledger: Ledger, backend: JobBackend, faults: Containment, retry_s: float, failure_retry_s: float,
        clock: Callable[[], float], commands: Executor | None = None,
    ) -> None:
        """`commands`: where the backend's accounting questions run (by default
        SEFF_CALLS_IN_FLIGHT + 1 worker threads, made when first needed)."""
        self._ledger = ledger
        self._backend = backend
        self._faults = faults
        self._retry_s = retry_s  # after seff had no data yet
        self._failure_retry_s = failure_retry_s  # after an unexpected failure
        self._clock = clock
        self._commands = commands
        self._pool: ThreadPoolExecutor | None = None  # the default `commands`, once made
        self._changed = False
        self._waiting: list[PendingMetrics] = []
        self._under_way: list[Collection] = []

    @property
    def pending(self) -> bool:
        """Metrics still to come: due later, or being collected."""
        return bool(self._waiting or self._under_way)

    @property
    def waiting(self) -> list[str]:
        """The jobs whose collection is due later, in order."""
        return [pending.job for pending in self._waiting]

    def add(self, job: str) -> None:
        """A job that just ended: its metrics are due now."""
        self._waiting.append(PendingMetrics(due=self._clock(), job=job))

    def next_due(self) -> float:
        """When a collection is next due, or, while one is under way, when to look whether it finished."""
        if self._under_way:
            return self._clock() + UNDER_WAY_LOOK_S
        return min(pending.due for pending in self._waiting)

    def collect_due(self) -> bool:
        """Start collecting the metrics now due (one retry after metrics_retry_s when
        accounting has no data yet, then the same figures from sacct), and record those of
        collections that finished. A collection that fails unexpectedly is tried again at
        the next poll, up to MAX_METRICS_FAILURES times. True when a job's record changed."""
        now = self._clock()
        due = [pending for pending in self._waiting if pending.due <= now]
        if due:
            self._waiting = [pending for pending in self._waiting if pending.due > now]
            self._under_way.append(self._start(due))
        self._changed = False
        for collection in [collection for collection in self._under_way if collection.done()]:
            self._under_way.remove(collection)
            self._record(collection, now)
        return self._changed

    def close(self) -> None:
        """Drop the commands not started yet (a monitor stopped by Ctrl-C does not wait for
        hundreds of seff calls as it exits; those running end on their own); the jobs of the
        collections under way are due again, should the monitor go on."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._waiting += [pending for collection in self._under_way for pending in collection.jobs]
        self._under_way.clear()

    def _start(self, jobs: list[PendingMetrics]) -> Collection:
        """sacct for all the jobs and each one's seff (without seff: sacct alone), all at once."""
        commands = self._commands
        if commands is None:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(SEFF_CALLS_IN_FLIGHT + 1, thread_name_prefix="ttlaunch-metrics")
            commands = self._pool
        job_ids = sorted({str(self._ledger.state.jobs[pending.job].job_id) for pending in jobs})
        backend = self._backend
        usages = commands.submit(_usage, backend, job_ids)
        reports = None
        if backend.efficiency_reports:
            reports = {job_id: commands.submit(_efficiency, backend, job_id) for job_id in job_ids}
        return Collection(jobs, usages, reports)

    def _record(self, collection: Collection, now: float) -> None:
        usages = collection.usages.result()
        if isinstance(usages, SchedulerCommandError):
            job_ids = ", ".join(sorted({str(self._ledger.state.jobs[pending.job].job_id) for pending in collection.jobs}))
            self._ledger.events.write(
                "POLL_FAILED", "Accounting of ended jobs failed", ("Job IDs", job_ids), ("Error", str(usages))
            )
            usages = {}
        reports = None
        if collection.reports is not None:
            reports = {job_id: report.result() for job_id, report in collection.reports.items()}
        for pending in collection.jobs:
            if self._faults.run(pending.job, "metrics", lambda: self._collect_metrics(pending, usages, reports, now)):
                continue
            pending.failures += 1
            if pending.failures < MAX_METRICS_FAILURES:
                pending.due = now + self._failure_retry_s
                self._waiting.append(pending)
            else:
                error = self._faults.failing.get((pending.job, "metrics"), "?")
                self._faults.run(pending.job, "metrics", lambda: self._ledger.events.write(
                    "COMPUTE_METRICS", pending.job, ("Job ID", self._ledger.state.jobs[pending.job].job_id),
                    ("Result", f"not collected after {pending.failures} tries: {error}"),
                ))

    def _collect_metrics(
        self, pending: PendingMetrics, usages: Usages | Exception, reports: Mapping[str, SeffAnswer] | None, now: float
    ) -> None:
        if isinstance(usages, Exception):
            raise usages
        record = self._ledger.state.jobs[pending.job]
        job_id = str(record.job_id)
        from_sacct, limit_s = usages.get(job_id, (None, None))
        from_seff = reports.get(job_id) if reports is not None else None
        if isinstance(from_seff, Exception):
            raise from_seff
        if from_seff is None and pending.tries == 1 and reports is not None:
            self._waiting.append(PendingMetrics(due=now + self._retry_s, job=pending.job, tries=2))
            return
        result = from_seff.filled_from(from_sacct) if from_seff is not None else from_sacct
        limit_s = limit_s or record.time_limit_s  # accounting may lag; the limit is what we asked for
        if result is None:
            self._ledger.events.write("COMPUTE_METRICS", pending.job, ("Job ID", job_id), ("Result", "no accounting data"))
            return
        fields = metrics.entry_fields(job_id, result, limit_s, timed_out=record.status is JobState.TIMEOUT)
        self._ledger.events.write("COMPUTE_METRICS", pending.job, *fields)
        record.metrics = {**result.as_record(), "time_limit_s": limit_s}
        self._changed = True
