"""What a rule's action does (ttlaunch.inputs.rulebook): log a message, start a command,
submit a follow-up, restart the job (after running out of memory, with a smaller micro-batch
and as much more gradient accumulation), cancel it. Submitting and cancelling go through the
launching side's Capabilities."""

from __future__ import annotations

import json
import logging
import subprocess
from typing import Mapping, Protocol, Sequence

from ttlaunch.base.times import timestamp
from ttlaunch.inputs.rulebook import Action, CancelAction, CommandAction, FollowUpAction, LogAction, RestartAction
from ttlaunch.inputs.schema import ComputeConfig
from ttlaunch.inputs.templates import render
from ttlaunch.monitor.batch_sizes import BatchChange, smaller_batch
from ttlaunch.records.ledger import Ledger
from ttlaunch.scheduler.states import JobState

log = logging.getLogger(__name__)


class Capabilities(Protocol):
    """What actions need from the launching side (ttlaunch.submit.submitter.SweepActions)."""

    def submit(
        self, job_name: str, run_name: str, template_job: str, overrides: Sequence[str], evaluation: bool = False,
        mem_gb: float | None = None,
    ) -> str | None: ...

    def cancel(self, job_name: str) -> None: ...

    def compute_of(self, template_job: str, run_name: str, evaluation: bool) -> ComputeConfig: ...

    def nodes_of(self, job_name: str) -> list[str]: ...

    def partition_size(self, partition: str | None) -> int | None: ...


class ActionRunner:
    """Runs the actions the rules engine decided, and watches the commands they started."""

    def __init__(self, ledger: Ledger, capabilities: Capabilities | None) -> None:
        self.ledger = ledger
        self.capabilities = capabilities
        self._commands: list[tuple[str, subprocess.Popen[bytes]]] = []  # (job, process)

    @property
    def running(self) -> bool:
        return bool(self._commands)

    def run(self, action: Action, job: str, event: str, variables: Mapping[str, object], sequence: int) -> None:
        """Carry out one action fired by `event` of `job` (its `sequence`: the number of
        actions decided before it, which names a command's output file)."""
        def done(*fields: tuple[str, object]) -> None:
            self.ledger.events.write("ACTION_DONE", job, ("Event", event), ("Action", kind(action)), *fields)

        try:
            if isinstance(action, LogAction):
                done(("Message", render(action.message, variables)))
            elif isinstance(action, CommandAction):
                argv = [render(part, variables) for part in action.command]
                out = self.ledger.sweep_dir / "actions" / f"{job}.{event}.{sequence}.log"
                out.parent.mkdir(parents=True, exist_ok=True)
                with out.open("wb") as stream:
                    process = subprocess.Popen(argv, stdout=stream, stderr=subprocess.STDOUT, cwd=self.ledger.sweep_dir)
                self._commands.append((job, process))
                done(("Command", json.dumps(argv)), ("Result", f"started (pid {process.pid}), output in {out}"))
            elif isinstance(action, FollowUpAction):
                name = render(action.name, variables)
                if name in self.ledger.state.jobs:  # stable names: a follow-up is submitted once
                    done(("Follow-up", name), ("Result", f"already submitted (job {self.ledger.state.jobs[name].job_id})"))
                    return
                overrides = [render(text, variables) for text in action.overrides]
                assert self.capabilities is not None
                job_id = self.capabilities.submit(name, str(variables["run_name"]), job, overrides)
                done(("Follow-up", name), ("Result", f"submitted as job {job_id}" if job_id else "submission failed"))
            elif isinstance(action, RestartAction):
                self._restart(action, job, event, variables)
            elif isinstance(action, CancelAction):
                assert self.capabilities is not None
                self.capabilities.cancel(job)
                done(("Result", f"job {variables['job_id']} cancelled"))
        except Exception as err:  # one failing action never stops the monitor
            done(("Result", f"failed: {err}"))
            log.error("%s: action %s failed: %s", job, kind(action), err)

    def _restart(self, action: RestartAction, job: str, event: str, variables: Mapping[str, object]) -> None:
        record = self.ledger.state.jobs[job]
        if record.job_id != variables.get("job_id"):  # remediation restarted this end already
            self.ledger.events.write("RESTART", job, ("Result", f"already restarted as job {record.job_id}"))
            return
        overrides: list[str] = []
        change: BatchChange | None = None
        if variables.get("error_type") == "oom":
            ooms = sum(1 for entry in record.restarts if entry.get("after") == JobState.OUT_OF_MEMORY.value)
            if action.on_oom == "never" or ooms >= action.max_oom_restarts:
                why = "on_oom=never" if action.on_oom == "never" else f"{ooms} OOM restarts already"
                self.ledger.events.write("RESTART", job, ("Result", f"not restarted after OUT_OF_MEMORY ({why})"))
                return
            smaller = smaller_batch(record)
            if isinstance(smaller, str):
                self.ledger.events.write("RESTART", job, ("Result", f"not restarted: {smaller}"))
                return
            change = smaller
            overrides += change.overrides
        assert self.capabilities is not None
        previous, after = record.job_id, str(variables.get("state", event))
        if variables.get("error_type") == "oom":
            after = JobState.OUT_OF_MEMORY.value
        job_id = self.capabilities.submit(job, str(variables["run_name"]), job, overrides)
        restarted = self.ledger.state.jobs[job]  # the new submission's record
        restarted.restarts.append(
            {"after": after, "previous_job_id": previous, "at": timestamp(), **(change.entry() if change else {})}
        )
        self.ledger.events.write(
            "RESTART", job, ("Previous job", f"{previous} ({after})"), ("Result", f"submitted as job {job_id}"),
            *([("Change", change.text)] if change else []), *([("Overrides", " ".join(overrides))] if overrides else []),
        )
        self.ledger.save()

    def reap(self) -> None:
        """Record the end of each started command that ended."""
        running = []
        for job, process in self._commands:
            code = process.poll()
            if code is None:
                running.append((job, process))
            else:
                self.ledger.events.write("ACTION_DONE", job, ("Action", "command"), ("Result", f"pid {process.pid} exited {code}"))
        self._commands = running


def kind(action: Action) -> str:
    return {
        LogAction: "log", CommandAction: "command", FollowUpAction: "follow_up", RestartAction: "restart",
        CancelAction: "cancel",
    }[type(action)]
