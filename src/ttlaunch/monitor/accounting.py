"""Compute metrics of the jobs that ended: one batched sacct for all jobs due, seff for each
(SEFF_CALLS_IN_FLIGHT at a time), one retry when accounting has no data yet, then the
figures sacct has. Each becomes a COMPUTE_METRICS entry and the job's `metrics` in jobs.json."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from ttlaunch.monitor.containment import Containment
from ttlaunch.records.ledger import Ledger
from ttlaunch.scheduler import metrics, slurm
from ttlaunch.scheduler.states import JobState

# After these states a job used its allocation to the end: its compute metrics are collected.
METRICS_STATES = {JobState.COMPLETED, JobState.FAILED, JobState.TIMEOUT}
# An ended job's metrics are given up after this many unexpected failures to collect them.
MAX_METRICS_FAILURES = 3
# seff calls in flight at once (each waits on slurmdbd, not on this process).
SEFF_CALLS_IN_FLIGHT = 8


@dataclass
class PendingMetrics:
    """An ended job whose compute metrics are still to be collected."""

    due: float  # on the monitor's clock
    job: str
    tries: int = 1  # 2 once seff had no data yet at the first try
    failures: int = 0  # unexpected errors while collecting them


class MetricsCollector:
    """The ended jobs whose metrics are still to come, and their collection when due."""

    def __init__(
        self, ledger: Ledger, faults: Containment, retry_s: float, failure_retry_s: float, clock: Callable[[], float]
    ) -> None:
        self._ledger = ledger
        self._faults = faults
        self._retry_s = retry_s  # after seff had no data yet
        self._failure_retry_s = failure_retry_s  # after an unexpected failure
        self._clock = clock
        self._changed = False
        self.pending: list[PendingMetrics] = []

    def add(self, job: str) -> None:
        """A job that just ended: its metrics are due now."""
        self.pending.append(PendingMetrics(due=self._clock(), job=job))

    def next_due(self) -> float:
        return min(pending.due for pending in self.pending)

    def collect_due(self) -> bool:
        """seff for each ended job; one retry after metrics_retry_s when accounting has no
        data yet, then the same figures from sacct. A collection that fails unexpectedly is
        tried again at the next poll, up to MAX_METRICS_FAILURES times. True when a job's
        record changed."""
        now = self._clock()
        due = [pending for pending in self.pending if pending.due <= now]
        if not due:
            return False
        self.pending = [pending for pending in self.pending if pending.due > now]
        self._changed = False
        usages, reports = self._metrics_sources(sorted({str(self._ledger.state.jobs[pending.job].job_id) for pending in due}))
        for pending in due:
            if self._faults.run(pending.job, "metrics", lambda: self._collect_metrics(pending, usages, reports, now)):
                continue
            pending.failures += 1
            if pending.failures < MAX_METRICS_FAILURES:
                pending.due = now + self._failure_retry_s
                self.pending.append(pending)
            else:
                error = self._faults.failing.get((pending.job, "metrics"), "?")
                self._faults.run(pending.job, "metrics", lambda: self._ledger.events.write(
                    "COMPUTE_METRICS", pending.job, ("Job ID", self._ledger.state.jobs[pending.job].job_id),
                    ("Result", f"not collected after {pending.failures} tries: {error}"),
                ))
        return self._changed

    def _metrics_sources(self, job_ids: list[str]) -> tuple[dict[str, Any] | Exception, dict[str, Any] | None]:
        """For the given ended jobs: sacct's usage (one call for all) and each one's seff
        report (None without seff; a job's report None while seff has no data, or the
        unexpected error its seff call raised), SEFF_CALLS_IN_FLIGHT seff calls at a time: a
        sweep of 50 jobs that end together has its metrics in about a second, not ten."""
        usages: dict[str, Any] | Exception = {}
        try:
            usages = slurm.usage(job_ids)
        except slurm.SchedulerCommandError as err:
            self._ledger.events.write("POLL_FAILED", "Accounting of ended jobs failed", ("Job IDs", ", ".join(job_ids)), ("Error", str(err)))
        except Exception as err:  # unexpected: each job's collection fails with it (and is retried)
            usages = err
        if shutil.which("seff") is None:
            return usages, None

        def report(job_id: str) -> Any:
            try:
                return slurm.seff(job_id)
            except slurm.SchedulerCommandError:  # seff fails outright for a job it has no data of
                return None
            except Exception as err:  # unexpected: that job's collection fails (and is retried)
                return err

        with ThreadPoolExecutor(max_workers=SEFF_CALLS_IN_FLIGHT) as pool:
            return usages, dict(zip(job_ids, pool.map(report, job_ids)))

    def _collect_metrics(
        self, pending: PendingMetrics, usages: dict[str, Any] | Exception, reports: dict[str, Any] | None, now: float
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
            self.pending.append(PendingMetrics(due=now + self._retry_s, job=pending.job, tries=2))
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
