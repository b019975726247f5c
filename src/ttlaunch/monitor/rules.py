"""The rules engine: runs the `monitoring` rules (ttlaunch.inputs.rulebook) on each poll.

Each poll it reads what every job wrote since the last poll (whole lines only), matches the
log events, takes the state changes the monitor saw and the jobs gone quiet, and turns each
matching event into one queued action per rule action. A queued action runs when its
conditions hold, is dropped when they fail, and waits while a blocking file condition
waits. Everything it knows lives in `<sweep>/rules.json` (ttlaunch.records.rules_state): read
offsets, queued actions and the keys of actions already decided. A key is marked before its
action runs, so a re-launched monitor neither loses a queued action nor repeats one that fired.

Conditions are judged in ttlaunch.monitor.conditions, actions carried out in
ttlaunch.monitor.actions. Commands run as argv lists, never through a shell: a value taken
from a job's output is passed as plain text, whatever characters it holds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ttlaunch.inputs.failure_causes import FailureCause
from ttlaunch.inputs.rulebook import CRASH, Action, FollowUpAction, LogEvent, RestartAction, Rules, StateEvent
from ttlaunch.monitor.actions import ActionRunner, Capabilities, kind
from ttlaunch.monitor.conditions import NO, WAIT, Subject, judge
from ttlaunch.monitor.job_output import new_lines
from ttlaunch.monitor.poll_failures import Containment
from ttlaunch.records.jobs_file import JobRecord
from ttlaunch.records.ledger import Ledger
from ttlaunch.records.rules_state import RULES_STATE_NAME, QueuedAction, RulesState
from ttlaunch.scheduler.states import JobState


class RulesEngine:
    name = "rules"  # the stage named when handling a job fails

    def __init__(
        self, rules: Rules, ledger: Ledger, capabilities: Capabilities | None = None, now: Callable[[], float] = time.time
    ) -> None:
        self.rules = rules
        self.ledger = ledger
        self.capabilities = capabilities
        self._now = now
        self.path = ledger.sweep_dir / RULES_STATE_NAME
        self.state = RulesState.load(self.path)
        self._decided = set(self.state.decided)
        self.actions = ActionRunner(ledger, capabilities)
        self._drained: set[str] = set()  # "<job>@<job id>" read to the end after the job ended

    # --- events -------------------------------------------------------------------------

    def variables(self, job: str, record: JobRecord, event: str) -> dict[str, object]:
        return {
            "run_name": record.run_name or job, "job_name": job, "job_id": record.job_id or "", "attempt": record.attempt,
            "output_dir": record.output_dir or "", "job_dir": record.job_dir or "", "sweep_dir": str(self.ledger.sweep_dir),
            "event": event,
        }

    def scan_log(self, job: str, record: JobRecord) -> None:
        """New whole lines of the job's stdout and stderr against the log events."""
        marker = f"{job}@{record.job_id}"
        if not self.rules.log_events or not record.job_id or marker in self._drained:
            return
        offsets = self.state.offsets.setdefault(job, {})
        for path_text in (record.stdout, record.stderr):
            if not path_text:
                continue
            lines, offset = new_lines(Path(path_text), offsets.get(path_text, 0))
            for line in lines:
                for event in self.rules.log_events:
                    found = event.match(line)
                    if found is not None:
                        self._fire(job, record, event.name, event.actions, found)
            # Only now: if matching failed, the next poll reads these lines again (firing is idempotent).
            offsets[path_text] = offset
        if record.status.terminal:  # read to its end after it ended: done with it
            self._drained.add(marker)

    def on_transition(self, job: str, record: JobRecord, previous: JobState, current: JobState) -> None:
        for event in self.rules.state_events:
            crashed = current is JobState.FAILED and record.exit_code not in (None, "0:0")
            cause = record.cause.value if record.cause is not None and current.terminal else None
            if current.value in event.states or (CRASH in event.states and crashed) or (cause and cause in event.states):
                variables = {
                    **event.metadata, "state": current.value, "exit_code": record.exit_code or "",
                    "error_type": error_type(record, current), "cause": cause or "",
                }
                self._fire(job, record, event.name, event.actions, variables)

    def check_inactivity(self, job: str, record: JobRecord) -> None:
        """A RUNNING job whose output has not changed for an event's inactive_s: once per job id."""
        events = [event for event in self.rules.state_events if event.inactive_s is not None]
        if not events or record.status is not JobState.RUNNING:
            return
        mtimes = [Path(p).stat().st_mtime for p in (record.stdout, record.stderr) if p and Path(p).exists()]
        if not mtimes:
            return
        quiet_for = self._now() - max(mtimes)
        for event in events:
            marker = f"{job}@{record.job_id}@{event.name}"
            if event.inactive_s is not None and quiet_for >= event.inactive_s and marker not in self.state.quiet:
                self.state.quiet.append(marker)
                variables = {**event.metadata, "state": "INACTIVE", "exit_code": ""}
                self._fire(job, record, event.name, event.actions, variables)

    def _fire(self, job: str, record: JobRecord, event: str, actions: Sequence[Action], found: Mapping[str, str]) -> None:
        variables = {**self.variables(job, record, event), **found}
        shown = ", ".join(f"{key}={value}" for key, value in found.items())
        fresh = False
        for index, action in enumerate(actions):
            key = json.dumps([job, record.job_id, event, index, sorted(found.items())])
            if key in self._decided or any(item.key == key for item in self.state.queued):
                continue
            fresh = True
            self.state.queued.append(QueuedAction(key, job, event, index, variables, self._now()))
        if fresh:
            self.ledger.events.write("EVENT", job, ("Event", event), ("Job ID", record.job_id), ("Values", shown or "-"))

    # --- actions ------------------------------------------------------------------------

    def _action(self, item: QueuedAction) -> Action | None:
        events: tuple[LogEvent | StateEvent, ...] = (*self.rules.log_events, *self.rules.state_events)
        for event in events:
            if event.name == item.event and item.action < len(event.actions):
                return event.actions[item.action]
        return None  # the rule is gone from the config since: nothing to run

    def run_queued(self, faults: Containment) -> None:
        """Each queued action: run, dropped or left waiting. One whose handling fails stays
        queued for the next poll."""
        still: list[QueuedAction] = []
        for item in self.state.queued:
            waiting: list[bool] = []
            if not faults.run(item.job, "rules: actions", lambda: waiting.append(self._handle(item))) or waiting[0]:
                still.append(item)
        self.state.queued = still

    def _handle(self, item: QueuedAction) -> bool:
        """Run one queued action if its conditions hold; whether it waits on."""
        action = self._action(item)
        if action is None:
            self._decide(item, "dropped: its rule is no longer configured")
            return False
        attempts = len(self.ledger.state.jobs[item.job].previous_job_ids) + 1
        subject = Subject(item.variables, waited_s=self._now() - item.queued_at, attempts=attempts)
        verdict, why = judge(action.conditions, subject)
        if verdict == WAIT:
            if not item.announced:
                item.announced = True
                self.ledger.events.write(
                    "ACTION_QUEUED", item.job, ("Event", item.event), ("Action", kind(action)), ("Waiting for", why)
                )
            return True
        if verdict == NO:
            self._decide(item, f"skipped: {why}")
            return False
        if isinstance(action, (FollowUpAction, RestartAction)) and self.capabilities is None:
            return True  # submitting needs the launcher: the next launch of the sweep runs it
        self._decided.add(item.key)
        self.state.decided.append(item.key)
        self.save()  # decided before it runs: a crash now loses it rather than repeating it
        self.actions.run(action, item.job, item.event, item.variables, sequence=len(self.state.decided))
        return False

    def _decide(self, item: QueuedAction, result: str) -> None:
        self._decided.add(item.key)
        self.state.decided.append(item.key)
        self.ledger.events.write("ACTION_DONE", item.job, ("Event", item.event), ("Result", result))

    # --- the poll -----------------------------------------------------------------------

    def after_poll(self, faults: Containment) -> None:
        """Each job's new output and silence, then the queued actions; one job's failure
        costs only that job's handling until the next poll."""
        for job, record in list(self.ledger.state.jobs.items()):
            faults.run(job, "rules: output", lambda: self.scan_log(job, record))
            faults.run(job, "rules: inactivity", lambda: self.check_inactivity(job, record))
        self.run_queued(faults)
        self.actions.reap()
        self.save()

    @property
    def pending(self) -> bool:
        """Actions still waiting or commands still running: the monitor keeps going."""
        waiting = [item for item in self.state.queued if not self._needs_launcher(item)]
        return bool(waiting or self.actions.running)

    def _needs_launcher(self, item: QueuedAction) -> bool:
        return self.capabilities is None and isinstance(self._action(item), (FollowUpAction, RestartAction))

    def save(self) -> None:
        self.state.save(self.path)


def error_type(record: JobRecord, state: JobState) -> str:
    """"oom" when the job ran out of memory (its cause, ttlaunch.inputs.failure_causes), else
    "crash" for a failure, else the state's name in lower case: a state event's {error_type}."""
    if state is JobState.OUT_OF_MEMORY or record.cause in (FailureCause.gpu_oom, FailureCause.host_oom):
        return "oom"
    if state is JobState.FAILED:
        return "crash"
    return str(state.value).lower()
