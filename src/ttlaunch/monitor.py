"""The monitor: polls a sweep's jobs until all of them ended, and records what it sees.

Each poll (one squeue, one batched sacct: ttlaunch.polling) turns state changes into
STATE_CHANGE entries, jobs.json and the status table (ttlaunch.ledger); after COMPLETED,
FAILED or TIMEOUT it collects compute metrics, every 5th poll of a running job its GPU
sample. At the end: checkpoint validation, ALL_COMPLETE and summary.md.

It is wired in as a Hydra callback (`SweepMonitor`, under `hydra.callbacks.monitor`): the
launcher hands it the ledger and the submitted jobs. `python -m ttlaunch.status` runs the
same Monitor on a sweep dir alone, so monitoring can be resumed anywhere.
"""

from __future__ import annotations

import getpass
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hydra.experimental.callback import Callback

from ttlaunch.ledger import Ledger
from ttlaunch.records import format_elapsed, parse_timestamp, timestamp
from ttlaunch.state import JobRecord, status_counts
from ttlaunch.states import JobState

log = logging.getLogger(__name__)

# After these states a job's compute metrics are collected (seed 002).
_METRICS_STATES = {JobState.COMPLETED, JobState.FAILED, JobState.TIMEOUT}
# Why a run of a job ended in a requeue, from accounting's state of that run.
_REQUEUE_REASONS = {
    JobState.NODE_FAIL: "node failure",
    JobState.PREEMPTED: "preempted",
    JobState.TIMEOUT: "timeout",
    JobState.REQUEUED: "requeued by scontrol or the scheduler",
}
# How long an interrupted launch waits for its local jobs to stop.
LOCAL_STOP_TIMEOUT_S = 60.0
# Default poll intervals: SLURM is shared by everyone, local jobs are children of ours.
SLURM_POLL_INTERVAL_S = 60.0
LOCAL_POLL_INTERVAL_S = 2.0


@dataclass(frozen=True)
class MonitorSettings:
    poll_interval_s: float
    alert_after_failures: int = 3
    resource_every_polls: int = 5
    metrics_retry_s: float = 30.0
    live: str = "auto"  # auto: a live table when stdout is a terminal; on; off


def reattach_hint(sweep_dir: Path) -> str:
    return f"python -m ttlaunch.status {sweep_dir} --follow"


class Monitor:
    def __init__(
        self,
        ledger: Ledger,
        settings: MonitorSettings,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from ttlaunch.polling import SlurmPoller

        self.ledger = ledger
        self.settings = settings
        self.slurm = ledger.state.executor == "slurm"
        self.poller = SlurmPoller(getpass.getuser()) if self.slurm else None
        self.local_jobs: dict[str, Any] = {}  # submitit handles of the local jobs we started
        self.consecutive_failures = 0
        self.pending_metrics: list[tuple[float, int, str]] = []  # (when, 1st or 2nd try, job name)
        self.running_polls: dict[str, int] = {}
        self._sleep, self._clock = sleep, clock
        self._began = clock()
        # What reacts to each poll: the rules engine (ttlaunch.rules), the evaluation
        # scheduler (ttlaunch.evaluations). Each has on_transition, after_poll and pending.
        self.reactions: list[Any] = []

    @property
    def events(self) -> Any:
        return self.ledger.events

    @property
    def jobs(self) -> dict[str, JobRecord]:
        return self.ledger.state.jobs

    def active(self) -> dict[str, JobRecord]:
        """Jobs submitted and not ended (those of earlier launches included)."""
        return {
            name: record for name, record in self.jobs.items() if record.job_id and not JobState(record.status).terminal
        }

    def poll(self) -> int:
        """Look at every job not yet ended once; the number still not ended."""
        from ttlaunch.polling import local_observation
        from ttlaunch.slurm import SchedulerCommandError

        active = self.active()
        if not active:
            for reaction in self.reactions:  # queued actions may still wait for files
                reaction.after_poll()
            return len(self.active())  # an action may have submitted a job
        if self.poller is not None:
            try:
                observed = self.poller.observe(active)
            except SchedulerCommandError as err:  # logged; the next poll tries again
                self._poll_failed(err)
                return len(active)
            self.consecutive_failures = 0
            for notice in self.poller.notices:
                self.events.write("POLL_FAILED", "Falling back", ("Note", notice))
                log.warning("%s", notice)
            self.poller.notices.clear()
        else:
            observed = {name: local_observation(record, self.local_jobs.get(name)) for name, record in active.items()}
        changed = False
        for name, observation in observed.items():
            previous = JobState(self.jobs[name].status)
            requeued = self._note_requeues(name, observation)
            updated = self._update(name, observation)
            changed = changed or requeued or updated
            if updated:
                for reaction in self.reactions:
                    reaction.on_transition(name, self.jobs[name], previous, observation.state)
        if changed:  # one write per poll, however many jobs changed
            self.ledger.save()
        for reaction in self.reactions:
            reaction.after_poll()
        return len(self.active())

    def run(self) -> None:
        """Poll until every job ended and its metrics are in, then validate and report."""
        from ttlaunch.live_view import live_view

        self.ledger.state.monitoring_started = self.ledger.state.monitoring_started or timestamp()
        self.ledger.save()
        with live_view(self.ledger.state, self.settings.live) as view:
            while True:
                remaining = self.poll()
                self._status_check()
                self._resource_status()
                self._collect_due_metrics()
                view.refresh()
                reacting = any(reaction.pending for reaction in self.reactions)
                if not remaining and not self.pending_metrics and not reacting:
                    break
                wait_s = self.settings.poll_interval_s
                if not remaining and self.pending_metrics:
                    wait_s = min(wait_s, max(0.0, min(due for due, _, _ in self.pending_metrics) - self._clock()))
                self._sleep(wait_s)
        self.finish()

    def finish(self) -> None:
        from ttlaunch.report import SUMMARY_NAME, render_summary
        from ttlaunch.state import write_atomically

        checks = self.validate()
        counts = status_counts(self.jobs.values(), first=(JobState.COMPLETED.value, JobState.FAILED.value))
        self.events.write(
            "ALL_COMPLETE",
            "Monitoring finished",
            ("Summary", f"{len(self.jobs)} jobs finished - " + ", ".join(f"{n} {s}" for s, n in counts.items())),
            ("Total time", format_elapsed(self._clock() - self._began)),
        )
        summary = render_summary(self.ledger.state, checks, self.events.path)
        write_atomically(self.ledger.sweep_dir / SUMMARY_NAME, summary)
        print(summary, flush=True)

    def validate(self) -> dict[str, Any]:
        """Each completed torchtune run must have left a usable checkpoint; flag those that did not."""
        from ttlaunch.report import check_checkpoint

        checks: dict[str, Any] = {}
        if self.ledger.state.payload_kind != "torchtune":  # other payloads have no checkpoint layout to check
            return checks
        for name, record in self.jobs.items():
            if record.status == JobState.COMPLETED.value and record.output_dir and record.kind == "training":
                check = checks[name] = check_checkpoint(Path(record.output_dir))
                result = f"OK: {check.checkpoint}" if check.ok else f"FLAGGED: {check.problem}"
                self.events.write("VALIDATION", name, ("Checkpoint", result))
        return checks

    def stop_local_jobs(self) -> None:
        """After Ctrl-C: local jobs are children of this process and must not outlive it
        unattended; cancel them and wait until they ended. SLURM jobs are left running."""
        running = [job for name, job in self.local_jobs.items() if name in self.active()]
        for job in running:
            job.cancel(check=False)
        deadline = self._clock() + LOCAL_STOP_TIMEOUT_S
        while any(not job.done() for job in running) and self._clock() < deadline:
            self._sleep(0.2)
        self.poll()

    def _status_check(self) -> None:
        counts = status_counts(self.jobs.values(), first=("PENDING", "RUNNING", "COMPLETED"))
        summary = ", ".join(f"{count} {state}" for state, count in counts.items())
        what = f"squeue -u {getpass.getuser()}" if self.slurm else "submitit local jobs"
        self.events.write("STATUS_CHECK", "Polling", ("Command", what), ("Result", f"{len(self.jobs)} jobs found - {summary}"))

    def _resource_status(self) -> None:
        """Every `resource_every_polls`-th poll of a running job, its newest GPU sample."""
        from ttlaunch.gpu_metrics import GPU_METRICS_NAME, read_latest_sample

        for name, record in self.jobs.items():
            if record.status != JobState.RUNNING.value or not record.job_dir:
                continue
            seen = self.running_polls[name] = self.running_polls.get(name, 0) + 1
            if seen % self.settings.resource_every_polls:
                continue
            sample = read_latest_sample(Path(record.job_dir) / GPU_METRICS_NAME)
            if sample is None:  # not sampled (yet): nothing to say
                continue
            self.events.write(
                "RESOURCE_STATUS", name,
                ("GPU Utilization", f"{sample.utilization_pct:.0f}% | GPU Memory: "
                 f"{sample.memory_used_gb:.1f}/{sample.memory_total_gb:.1f} GB ({sample.gpus} GPU, {sample.timestamp})"),
            )

    def _collect_due_metrics(self) -> None:
        """seff for each ended job; one retry after metrics_retry_s when accounting has no
        data yet, then the same figures from sacct."""
        import shutil

        from ttlaunch import metrics, slurm

        now = self._clock()
        due = [entry for entry in self.pending_metrics if entry[0] <= now]
        if not due:
            return
        self.pending_metrics = [entry for entry in self.pending_metrics if entry[0] > now]
        have_seff = shutil.which("seff") is not None
        for _, tried, name in due:
            record = self.jobs[name]
            job_id = str(record.job_id)
            try:
                from_sacct, limit_s = metrics.parse_usage(slurm.usage(job_id))
                try:
                    from_seff = metrics.parse_seff(slurm.seff(job_id)) if have_seff else None
                except slurm.SchedulerCommandError:
                    from_seff = None
            except slurm.SchedulerCommandError as err:
                self.events.write("POLL_FAILED", f"Accounting for {name} failed", ("Error", str(err)))
                from_sacct, limit_s, from_seff = None, None, None
            if from_seff is None and tried == 1 and have_seff:
                self.pending_metrics.append((now + self.settings.metrics_retry_s, 2, name))
                continue
            result = from_seff or from_sacct
            limit_s = limit_s or record.time_limit_s  # accounting may lag; the limit is what we asked for
            if result is None:
                self.events.write("COMPUTE_METRICS", name, ("Job ID", job_id), ("Result", "no accounting data"))
                continue
            fields = metrics.entry_fields(job_id, result, limit_s, timed_out=record.status == JobState.TIMEOUT.value)
            self.events.write("COMPUTE_METRICS", name, *fields)
            record.metrics = {**result.as_record(), "time_limit_s": limit_s}
            self.ledger.save()

    def _poll_failed(self, err: Exception) -> None:
        self.consecutive_failures += 1
        count = self.consecutive_failures
        self.events.write("POLL_FAILED", "Querying SLURM failed", ("Error", str(err)), ("Consecutive failures", count))
        log.warning("polling SLURM failed (%d in a row): %s", count, err)
        if count == self.settings.alert_after_failures:
            message = (
                f"SLURM has not answered {count} polls in a row; jobs keep running. Check `squeue`/`sacct` "
                "by hand or ask your admins; ttlaunch keeps polling."
            )
            self.events.write("POLL_FAILED", "Alert: repeated failures", ("Alert", message))
            log.error(message)

    def _note_requeues(self, name: str, observation: Any) -> bool:
        """A job SLURM restarted since the last poll: one STATE_CHANGE to REQUEUED per
        requeue, with the attempt that begins and why the last one ended."""
        record = self.jobs[name]
        if observation.restarts is None or observation.restarts + 1 <= record.attempt:
            return False
        for attempt in range(record.attempt + 1, observation.restarts + 2):
            reason = self._requeue_reason(record, attempt - 1)
            record.requeues.append({"attempt": attempt - 1, "reason": reason, "at": timestamp()})
            self.events.write(
                "STATE_CHANGE", name, ("Previous", record.status), ("Current", JobState.REQUEUED.value),
                ("Job ID", record.job_id), ("Attempt", f"{attempt} (attempt {attempt - 1} ended: {reason})"),
            )
            log.info("%s: requeued (%s); attempt %d", name, reason, attempt)
            record.status, record.attempt = JobState.REQUEUED.value, attempt
        return True

    def _requeue_reason(self, record: JobRecord, ended_attempt: int) -> str:
        """What the job wrote when it requeued itself; else what accounting says of that run."""
        from ttlaunch import slurm
        from ttlaunch.requeueing import read_requeues

        if record.job_dir:
            for entry in read_requeues(Path(record.job_dir)):
                if entry.get("attempt") == ended_attempt:
                    return str(entry["reason"])
        try:
            runs = slurm.run_history(str(record.job_id))
        except slurm.SchedulerCommandError:
            return "requeued"
        if len(runs) >= ended_attempt:
            return _REQUEUE_REASONS.get(runs[ended_attempt - 1].state, "requeued")
        return "requeued"

    def _update(self, name: str, observation: Any) -> bool:
        """Record a change of state (the caller saves); whether there was one."""
        from ttlaunch.report import epoch_dirs

        record = self.jobs[name]
        previous, current = JobState(record.status), observation.state
        if current is previous or current is JobState.UNKNOWN:
            return False
        record.status = current.value
        fields: list[tuple[str, object]] = [("Previous", previous.value), ("Current", current.value), ("Job ID", record.job_id)]
        if current is JobState.RUNNING or (current.terminal and record.started is None):
            record.started = observation.started or timestamp()
            if current is JobState.RUNNING:
                fields.append(("Started", record.started))
        if current.terminal:
            record.completed = observation.completed or timestamp()
            if observation.started:
                record.started = observation.started  # accounting's time beats our sighting
            seconds_run = observation.elapsed_s
            if seconds_run is None:
                seconds_run = _seconds_between(record.started or record.submitted, record.completed)
            record.elapsed = format_elapsed(seconds_run)
            record.exit_code = observation.exit_code
            if record.output_dir:
                record.checkpoints = [str(path) for path in epoch_dirs(Path(record.output_dir))]
            fields += [("Completed", record.completed), ("Elapsed", record.elapsed)]
            if current is not JobState.COMPLETED:
                if record.exit_code:
                    fields.append(("Exit code", record.exit_code))
                fields.append(("Log", record.stderr))
        self.events.write("STATE_CHANGE", name, *fields)
        log.info("%s: %s -> %s", name, previous.value, current.value)
        if self.poller is not None and self.poller.accounting and current in _METRICS_STATES:
            self.pending_metrics.append((self._clock(), 1, name))
        return True


def _seconds_between(start: str | None, end: str) -> float:
    began, ended = parse_timestamp(start), parse_timestamp(end)
    return (ended - began).total_seconds() if began and ended else 0.0


def default_poll_interval(executor: str) -> float:
    return SLURM_POLL_INTERVAL_S if executor == "slurm" else LOCAL_POLL_INTERVAL_S


class SweepMonitor(Callback):
    """The Hydra callback that monitors a sweep (configured under `hydra.callbacks.monitor`).

    Hydra instantiates callbacks in the launching process and again in every job; this one
    does nothing but hold its settings until the launcher hands it a sweep (`watch`).
    Switch it off with `~hydra.callbacks.monitor`: jobs are then submitted and recorded,
    and `python -m ttlaunch.status <sweep dir> --follow` can monitor them later.
    """

    def __init__(
        self,
        poll_interval_s: float | None = None,
        alert_after_failures: int = 3,
        resource_every_polls: int = 5,
        metrics_retry_s: float = 30.0,
        live: str = "auto",
        detach: bool = False,
    ) -> None:
        if live not in ("auto", "on", "off"):
            raise ValueError(f"hydra.callbacks.monitor.live: expected auto, on or off, got {live!r}")
        if alert_after_failures < 1 or resource_every_polls < 1:
            raise ValueError("hydra.callbacks.monitor: alert_after_failures and resource_every_polls must be positive")
        self.poll_interval_s = poll_interval_s
        self.alert_after_failures = alert_after_failures
        self.resource_every_polls = resource_every_polls
        self.metrics_retry_s = metrics_retry_s
        self.live = live
        self.detach = detach

    def monitor_for(self, ledger: Ledger) -> Monitor:
        """A monitor of the ledger's sweep; the launcher adds jobs and polls it while submitting."""
        interval = self.poll_interval_s or default_poll_interval(ledger.state.executor)
        settings = MonitorSettings(
            poll_interval_s=interval, alert_after_failures=self.alert_after_failures,
            resource_every_polls=self.resource_every_polls, metrics_retry_s=self.metrics_retry_s, live=self.live,
        )
        return Monitor(ledger, settings)

    def watch(self, monitor: Monitor) -> None:
        """Monitor to the end, or (detach) return at once saying how to come back."""
        if self.detach:
            message = f"detached: jobs keep running; follow them with `{reattach_hint(monitor.ledger.sweep_dir)}`"
            print(f"ttlaunch: {message}", file=sys.stderr, flush=True)
            return
        try:
            monitor.run()
        except KeyboardInterrupt:
            if monitor.slurm:
                print(
                    f"ttlaunch: monitoring stopped; SLURM jobs keep running. Re-attach with "
                    f"`{reattach_hint(monitor.ledger.sweep_dir)}` or the same launch command.",
                    file=sys.stderr, flush=True,
                )
            raise


def find_monitor(callbacks: Any) -> Any | None:
    """The first configured Hydra callback that monitors sweeps (`monitor_for` and `watch`);
    None when monitoring is switched off."""
    for callback in getattr(callbacks, "callbacks", None) or []:
        if hasattr(callback, "monitor_for") and hasattr(callback, "watch"):
            return callback
    return None
