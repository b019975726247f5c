"""The monitor: polls a sweep's jobs until all of them ended, and records what it sees.

Each poll (through the sweep's backend, ttlaunch.backend: on SLURM one squeue and one
batched sacct) turns state changes (ttlaunch.monitor.state_changes) into STATE_CHANGE
entries, jobs.json and the status table (ttlaunch.records.ledger), and tells the reactions
(rules, evaluations, remediation, pruning); after COMPLETED, FAILED, TIMEOUT or PRUNED it
collects compute metrics (ttlaunch.monitor.accounting), every 5th poll of a running job its
GPU sample. At the end:
checkpoint validation, ALL_COMPLETE and summary.md.

It is wired in as a Hydra callback (ttlaunch.monitor.callback): the launcher hands it the
ledger and the submitted jobs. `python -m ttlaunch.status` runs the
same Monitor on a sweep dir alone, so monitoring can be resumed anywhere.
"""

from __future__ import annotations

import copy
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

from ttlaunch.backend.contract import JobBackend
from ttlaunch.backend.executors import backend_for
from ttlaunch.backend.observation import Observation
from ttlaunch.base.times import format_elapsed, timestamp
from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.job.gpu_sampler import read_job_sample
from ttlaunch.monitor.accounting import METRICS_STATES, MetricsCollector
from ttlaunch.monitor.live_view import live_view
from ttlaunch.monitor.poll_failures import SWEEP, Containment
from ttlaunch.monitor.settings import MonitorSettings
from ttlaunch.monitor.state_changes import apply_state, note_requeues
from ttlaunch.monitor.tracker_sync import TrackerSync
from ttlaunch.monitor.training import TrainingWatch, training_curves
from ttlaunch.records.event_log import EventLog
from ttlaunch.records.jobs_file import Evaluator, JobRecord, status_counts
from ttlaunch.records.ledger import Ledger
from ttlaunch.records.plots import import_figure_modules
from ttlaunch.records.sweep_summary import CheckpointCheck, checkpoint_checks, draw_pictures, write_summary
from ttlaunch.scheduler.states import JobState

log = logging.getLogger(__name__)

# An unchanged STATUS_CHECK is written at most this often.
STATUS_CHECK_EVERY_S = 60.0
# How long an interrupted launch waits for its local jobs to stop.
LOCAL_STOP_TIMEOUT_S = 60.0
# Between end checks, how often the monitor looks whether every job still active looks ended
# (the backend's `finished`: one stat, while most still run): the sweep's last jobs are then
# confirmed at once, not up to an end check later, while the user waits.
LAST_ENDS_LOOK_S = 0.1


@dataclass(frozen=True)
class Transition:
    job: str
    previous: JobState
    current: JobState


class Reaction(Protocol):
    """What reacts to each poll: the rules engine (ttlaunch.monitor.rules), the evaluation scheduler
    (ttlaunch.monitor.evaluations)."""

    name: str  # the stage named when its handling of a job fails

    def on_transition(self, job: str, record: JobRecord, previous: JobState, current: JobState) -> None: ...

    def after_poll(self, faults: Containment) -> None: ...

    @property
    def pending(self) -> bool: ...


class Monitor:
    def __init__(
        self,
        ledger: Ledger,
        settings: MonitorSettings,
        backend: JobBackend | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        metrics_commands: Executor | None = None,
        reactions: Sequence[Reaction] = (),
    ) -> None:
        """`backend`: the one the launch submits through; by default the one jobs.json names.
        `metrics_commands`: where the commands collecting compute metrics run (by default
        worker threads: ttlaunch.monitor.accounting). `reactions`: what each poll's changes
        are told to (rules, evaluations)."""
        self.ledger = ledger
        self.settings = settings
        self.backend = backend or backend_for(ledger.state.executor)
        self.poll_interval_s = settings.poll_interval_s or self.backend.poll_interval_s
        self.consecutive_failures = 0
        self.running_polls: dict[str, int] = {}
        self.faults = Containment(ledger.events, ledger.sweep_dir)
        self.training = TrainingWatch(ledger)
        self.metrics = MetricsCollector(
            ledger, self.backend, self.faults, settings.metrics_retry_s, self.poll_interval_s, clock, metrics_commands
        )
        self.reactions = tuple(reactions)
        self._undelivered: list[tuple[Reaction, Transition]] = []  # transitions a reaction failed on
        self._unsaved = False  # a change not yet in jobs.json
        self._pictures: list[Path] | None = None  # the report's, once drawn (None: none drawn or no matplotlib)
        self._pictures_drawn = False
        self._last_status_check: tuple[str, float] = ("", float("-inf"))  # what it said, when
        self._sleep, self._clock = sleep, clock
        self._began = clock()
        self.tracker = TrackerSync(ledger, settings.tracker_sync_every_s, clock) if settings.tracker_sync == "on" else None

    @property
    def events(self) -> EventLog:
        return self.ledger.events

    @property
    def jobs(self) -> dict[str, JobRecord]:
        return self.ledger.state.jobs

    def active(self) -> dict[str, JobRecord]:
        """Jobs submitted and not ended (those of earlier launches included)."""
        return {
            name: record for name, record in self.jobs.items() if record.job_id and not record.status.terminal
        }

    def poll(self) -> int:
        """Look at every job not yet ended once; the number still not ended. One job's
        handling that fails is logged and tried again next poll (ttlaunch.monitor.poll_failures)."""
        self.faults.check_sweep_dir()
        active = self.active()
        self._record(self._observe(self.backend.observe, active) if active else {})
        return len(self.active())

    def _record(self, observed: dict[str, Observation]) -> None:
        """Record what was seen of each job, tell the reactions, save once."""
        transitions: list[Transition] = []
        for name, observation in observed.items():
            self.faults.run(name, "state", lambda: self._apply(name, observation, transitions))
        self._deliver(transitions)
        if self.training.read(self.faults):
            self._unsaved = True
        if self._unsaved:  # one write per poll, however many jobs changed
            self._save()
        for reaction in self.reactions:
            self.faults.run(SWEEP, reaction.name, lambda: reaction.after_poll(self.faults))

    def _wait(self, wait_s: float, refresh: Callable[[], None]) -> None:
        """Until the next poll. Meanwhile, as often as the backend says, look for jobs that
        ended (on SLURM: that wrote their result and one sacct shows ended; locally: whose
        process exited) and record them and their compute metrics, so a sweep's end is known
        within seconds while the queue is still asked once per poll interval; the last jobs'
        ends at once (LAST_ENDS_LOOK_S). Returns early once no job is left running."""
        deadline = self._clock() + wait_s
        checked = self._clock()
        # Only what is recorded here ends jobs or submits new ones between polls: a look costs
        # a stat, not a pass over every record (10,000 of them, ten times a second).
        active = self.active()
        while self._clock() < deadline:
            step_s = self.backend.end_check_every_s(self.settings.end_check_s)
            if step_s is None:
                self._sleep(max(0.0, deadline - self._clock()))
                return
            due = checked + step_s
            self._sleep(max(0.0, min(due, self._clock() + LAST_ENDS_LOOK_S, deadline) - self._clock()))
            if self.metrics.pending and self.metrics.collect_due():  # a collection under way finished
                self._unsaved = True
            if self._clock() >= deadline or not active:
                return  # the poll is due (the queue has the word), or nothing is left to watch
            if self._clock() < due and not self.backend.finished(active, self._clock()):
                continue
            checked = self._clock()
            self.faults.check_sweep_dir()
            ended = self._observe(lambda records: self.backend.ended(records, self._clock()), active)
            if ended:
                self._record(ended)
                # Their costs now: not all of them after the last job, where the user waits.
                if self.metrics.collect_due():
                    self._unsaved = True
                self.faults.run(SWEEP, "live view", refresh)
                active = self.active()
                if not active:
                    return

    def follow(self) -> None:
        """Poll until every job ended and its metrics are in, then validate and report."""
        self.faults.check_sweep_dir()
        self.ledger.state.monitoring_started = self.ledger.state.monitoring_started or timestamp()
        self._save()
        try:
            self._watch()
        finally:
            self.metrics.close()
        self.finish()

    def _watch(self) -> None:
        """Poll (and wait between polls) until every job ended and its metrics are in."""
        figures_imported = False
        with live_view(self.ledger.state, self.settings.live) as view:
            while True:
                remaining = self.poll()
                self.faults.run(SWEEP, "status check", self._status_check)
                self._resource_status()
                if self.tracker is not None:
                    self.faults.run(SWEEP, "tracker sync", self._tracker_tick)
                if self.metrics.collect_due():
                    self._unsaved = True
                # Once a record could not be written (a full disk), jobs.json is written again
                # each poll: its success is what says recording is back, whatever write failed.
                if self._unsaved or self.faults.cannot_record is not None:
                    self._save()
                self.faults.run(SWEEP, "live view", view.refresh)
                reacting = any(reaction.pending for reaction in self.reactions)
                # The end is not over before it is recorded (a full disk: until there is room).
                recorded = not self._unsaved and self.faults.cannot_record is None
                if not remaining and not self.metrics.pending and not reacting and recorded:
                    break
                wait_s = self.poll_interval_s
                if not remaining and self.metrics.pending:
                    wait_s = min(wait_s, max(0.0, self.metrics.next_due() - self._clock()))
                    if not reacting and not self._pictures_drawn:  # no picture shows the metrics: drawn meanwhile
                        self.faults.run(SWEEP, "summary", self._draw_pictures)
                if not figures_imported:  # for the report's pictures, in time spent waiting anyway
                    began = self._clock()
                    import_figure_modules()
                    figures_imported = True
                    wait_s = max(0.0, wait_s - (self._clock() - began))
                self._wait(wait_s, view.refresh)

    def finish(self) -> None:
        if self.tracker is not None:  # before the summary, which names each run's W&B page
            self.faults.run(SWEEP, "tracker sync", self._tracker_finish)
        checks = self.validate()
        self.faults.run(SWEEP, "summary", lambda: self._report(checks))

    def _report(self, checks: dict[str, CheckpointCheck]) -> None:
        counts = status_counts(self.jobs.values(), first=(JobState.COMPLETED.value, JobState.FAILED.value))
        self.events.write(
            "ALL_COMPLETE",
            "Monitoring finished",
            ("Summary", f"{len(self.jobs)} jobs finished - " + ", ".join(f"{n} {s}" for s, n in counts.items())),
            ("Total time", format_elapsed(self._clock() - self._began)),
        )
        if not self._pictures_drawn:
            self._draw_pictures()
        summary = write_summary(self.ledger.sweep_dir, self.ledger.state, checks, self.events.path, self._pictures)
        print(summary, flush=True)

    def _tracker_tick(self) -> None:
        assert self.tracker is not None  # called only with one
        if self.tracker.tick():
            self._unsaved = True

    def _tracker_finish(self) -> None:
        assert self.tracker is not None  # called only with one
        if self.tracker.finish():
            self._save()

    def _draw_pictures(self) -> None:
        self._pictures = draw_pictures(self.ledger.sweep_dir, self.ledger.state, training_curves(self.ledger.state))
        self._pictures_drawn = True

    def validate(self) -> dict[str, CheckpointCheck]:
        """Each completed torchtune run must have left a usable checkpoint; flag those that did not."""
        checks: dict[str, CheckpointCheck] = {}
        self.faults.run(SWEEP, "validation", lambda: checks.update(checkpoint_checks(self.ledger.state)))
        for name, check in checks.items():
            result = f"OK: {check.checkpoint}" if check.ok else f"FLAGGED: {check.problem}"
            self.faults.run(name, "validation", lambda: self.events.write("VALIDATION", name, ("Checkpoint", result)))
        return checks

    def stop_local_jobs(self) -> list[str]:
        """After Ctrl-C: jobs that are children of this process (the backend says which) must
        not outlive it unattended; stop them and wait until they ended (SLURM jobs are left
        running). The names of the jobs stopped, each marked as stopped by ttlaunch (not failed)."""
        stopping = self.backend.stoppable(list(self.active()))
        for name in stopping:
            self.jobs[name].stopped_by_ttlaunch = True
        self.backend.stop(stopping, LOCAL_STOP_TIMEOUT_S)
        if self.ledger.sweep_dir.is_dir():  # else there is nowhere to record it
            self.poll()
        return stopping

    def _observe(
        self, look: Callable[[dict[str, JobRecord]], dict[str, Observation]], active: dict[str, JobRecord]
    ) -> dict[str, Observation]:
        """One look at the scheduler (a poll, or the end check between polls) for the active
        jobs; nothing when it did not answer (logged; the next look asks again)."""
        try:
            observed = look(active)
        except Exception as err:  # SLURM away, or an answer nobody can read: the next poll asks again
            self._poll_failed(err)
            return {}
        self.consecutive_failures = 0
        for notice in self.backend.take_notices():
            self.events.write("POLL_FAILED", "Falling back", ("Note", notice))
            log.warning("%s", notice)
        return observed

    def _apply(self, name: str, observation: Observation, transitions: list[Transition]) -> None:
        """Record what one poll saw of one job, whole or not at all: when anything fails, the
        record is as it was, and the next poll sees the same change again."""
        record = self.jobs[name]
        previous = record.status
        requeued = observation.restarts is not None and observation.restarts + 1 > record.attempt
        if not requeued and observation.state in (previous, JobState.UNKNOWN):
            return  # nothing to record: the common case, kept cheap (no copy)
        snapshot = copy.deepcopy(record)
        try:
            requeues = note_requeues(record, observation, self.backend.ended_runs)
            state = self.ledger.state
            update = apply_state(
                record, observation, state.evaluator is Evaluator.INSPECT, state.payload_kind is PayloadKind.app,
                state.cause_patterns,
            )
            self.events.write_all([*requeues, *update])  # all or none, as the record
        except BaseException:
            self.jobs[name] = snapshot
            raise
        if requeues or update:
            self._unsaved = True
        if not update:
            return
        current = observation.state
        log.info("%s: %s -> %s", name, previous.value, current.value)
        transitions.append(Transition(name, previous, current))
        if self.backend.accounting and current in METRICS_STATES:
            self.metrics.add(name)

    def _deliver(self, transitions: list[Transition]) -> None:
        """Each reaction hears of each transition; one it failed on is told again next poll."""
        queue = self._undelivered + [(reaction, transition) for transition in transitions for reaction in self.reactions]
        self._undelivered = []
        for reaction, transition in queue:
            record = self.jobs.get(transition.job)
            if record is None:
                continue
            told = self.faults.run(
                transition.job, reaction.name,
                lambda: reaction.on_transition(transition.job, record, transition.previous, transition.current),
            )
            if not told:
                self._undelivered.append((reaction, transition))

    def _save(self) -> None:
        """jobs.json, then the status table; a failed write is tried again at the next poll."""
        self._unsaved = not self.faults.run(SWEEP, "jobs.json", self.ledger.save_state)
        if not self._unsaved:
            self.faults.recorded()
        self.faults.run(SWEEP, "status table", self.ledger.update_status_table)

    def _status_check(self) -> None:
        """A STATUS_CHECK entry when the counts changed, else at most every STATUS_CHECK_EVERY_S
        (the local default polls every 2 s: the log would repeat itself)."""
        counts = status_counts(self.jobs.values(), first=("PENDING", "RUNNING", "COMPLETED"))
        result = f"{len(self.jobs)} jobs found - " + ", ".join(f"{count} {state}" for state, count in counts.items())
        now = self._clock()
        said, at = self._last_status_check
        if result == said and now - at < STATUS_CHECK_EVERY_S:
            return
        self.events.write("STATUS_CHECK", "Polling", ("Command", self.backend.poll_command), ("Result", result))
        self._last_status_check = (result, now)

    def _resource_status(self) -> None:
        """Every `resource_every_polls`-th poll of a running job, its newest GPU sample."""
        for name, record in self.jobs.items():
            if record.status is not JobState.RUNNING or not record.job_dir:
                continue
            seen = self.running_polls[name] = self.running_polls.get(name, 0) + 1
            if seen % self.settings.resource_every_polls == 0:
                self.faults.run(name, "resources", lambda: self._log_gpu_sample(name, Path(str(record.job_dir))))

    def _log_gpu_sample(self, name: str, job_dir: Path) -> None:
        sample = read_job_sample(job_dir)
        if sample is not None:  # not sampled (yet): nothing to say
            self.events.write("RESOURCE_STATUS", name, ("GPU Utilization", sample.describe()))

    def _poll_failed(self, err: Exception) -> None:
        self.consecutive_failures += 1
        count = self.consecutive_failures
        runner = self.backend.runner
        self.events.write("POLL_FAILED", f"Querying {runner} failed", ("Error", str(err)), ("Consecutive failures", count))
        log.warning("polling %s failed (%d in a row): %s", runner, count, err)
        if count == self.settings.alert_after_failures:
            message = (
                f"{runner} has not answered {count} polls in a row; jobs keep running. Check `squeue`/`sacct` "
                "by hand or ask your admins; ttlaunch keeps polling."
            )
            self.events.write("POLL_FAILED", "Alert: repeated failures", ("Alert", message))
            log.error(message)
