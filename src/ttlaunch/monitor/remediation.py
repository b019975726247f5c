"""What ttlaunch does when a run ends without completing (`remediation=auto`, a monitor
reaction), by the end's cause (ttlaunch.inputs.failure_causes):

* what the cluster broke is repaired: the run restarts from its newest checkpoint, after a
  GPU out of memory with a smaller micro-batch and as much more gradient accumulation
  (ttlaunch.monitor.batch_sizes), after the node's memory with more memory, after a node or
  interconnect failure on other nodes (the failed ones are left out of the sweep's
  submissions for a while, never more than a share of the partition, and forgiven once a job
  completes on them); each restart logged, counted per run and bounded;
* what the code broke is never restarted, and once the same error (ttlaunch.inputs.
  failure_causes.error_signature) ended `same_error_stop` runs, the sweep stops: nothing more
  is submitted (ttlaunch.submit.submitter), the jobs still queued are cancelled (to be
  resumed by the next launch), and the user is told which error, which runs and where the
  first traceback is.

Preemptions and time limits are the requeue's (ttlaunch.job.requeue).
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from pathlib import Path
from typing import Sequence

from ttlaunch.base.times import timestamp
from ttlaunch.inputs.failure_causes import FailureCause, error_signature
from ttlaunch.inputs.schema import RemediationConfig
from ttlaunch.job.failure import read_tail, without_wrapper
from ttlaunch.monitor.actions import Capabilities
from ttlaunch.monitor.batch_sizes import smaller_batch
from ttlaunch.monitor.poll_failures import Containment
from ttlaunch.records.jobs_file import JobKind, JobRecord
from ttlaunch.records.ledger import Ledger
from ttlaunch.scheduler.states import JobState

log = logging.getLogger(__name__)

# How much more memory, at most, a run gets after host_oom when remediation.max_mem_gb is unset.
DEFAULT_MEMORY_BOUND = 4.0
# States of a job that is queued, not yet running: what the early stop cancels.
_QUEUED = (JobState.PENDING, JobState.REQUEUED)


class Remediation:
    """Repairs what the cluster broke, stops the sweep when its code broke (a monitor reaction)."""

    name = "remediation"  # the stage named when handling a job fails

    def __init__(
        self, settings: RemediationConfig, ledger: Ledger, capabilities: Capabilities, command_batch_keys: Sequence[str] = (),
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.capabilities = capabilities
        self.command_batch_keys = tuple(command_batch_keys)  # payload.batch_keys of a command payload
        self._errors: dict[str, list[str]] | None = None  # error signature -> the jobs it ended, oldest first

    def on_transition(self, job: str, record: JobRecord, previous: JobState, current: JobState) -> None:
        if current is JobState.COMPLETED and self.ledger.state.excluded_nodes:
            self._forgive(job)
        if record.cause is None or current is JobState.COMPLETED or not current.terminal:
            return
        if record.cause.code_fault:
            self._count_error(job, record)
        elif record.cause.cluster_fault and self.settings.enabled:
            self._restart(job, record, record.cause)

    def after_poll(self, faults: Containment) -> None:
        return None  # it acts on ends, as they are seen

    @property
    def pending(self) -> bool:
        return False

    # --- what the cluster broke ------------------------------------------------------------

    def _restart(self, job: str, record: JobRecord, cause: FailureCause) -> None:
        def refuse(why: str) -> None:
            self.ledger.events.write("RESTART", job, ("Cause", cause.value), ("Result", f"not restarted: {why}"))
            log.warning("%s ended (%s) and is not restarted: %s", job, cause.value, why)

        done = [entry for entry in record.restarts if entry.get("by") == "remediation"]
        if len(done) >= self.settings.max_restarts:
            refuse(f"{len(done)} restarts already (remediation.max_restarts={self.settings.max_restarts})")
            return
        evaluation = record.kind is JobKind.EVALUATION
        run_name = record.run_name or job
        overrides: list[str] = []
        mem_gb: float | None = None
        entry: dict[str, object] = {}
        change = "as it was"
        if cause is FailureCause.gpu_oom:
            if evaluation:
                refuse("an evaluation's batch is its evaluator's")
                return
            smaller = smaller_batch(record, self.command_batch_keys)
            if isinstance(smaller, str):
                refuse(smaller)
                return
            overrides, change, entry = smaller.overrides, smaller.text, smaller.entry()
        elif cause is FailureCause.host_oom:
            asked = self._memory(job, run_name, evaluation, record)
            if asked is None:
                refuse("the run asks for no memory of its own (set compute.mem_gb)")
                return
            first, current = asked
            bound = self.settings.max_mem_gb or DEFAULT_MEMORY_BOUND * first
            mem_gb = min(round(current * self.settings.memory_factor, 1), bound)
            if mem_gb <= current:
                refuse(f"it asks for {current:g} GB already, the bound (remediation.max_mem_gb; unset, 4x its first ask)")
                return
            change, entry = f"memory {current:g}→{mem_gb:g} GB", {"mem_gb": [current, mem_gb]}
        else:  # node_failure, communication
            left_out = self._exclude(job, evaluation, run_name)
            if left_out:
                change, entry = f"without {', '.join(left_out)}", {"excluded": left_out}
        grown = _memory_changes(record)
        if mem_gb is None and grown:  # a run that got more memory keeps it
            mem_gb = grown[-1][1]
        previous = record.job_id
        job_id = self.capabilities.submit(job, run_name, job, overrides, evaluation=evaluation, mem_gb=mem_gb)
        restarted = self.ledger.state.jobs[job]  # the new submission's record
        restarted.restarts.append(
            {"after": cause.value, "by": "remediation", "previous_job_id": previous, "at": timestamp(), "change": change, **entry}
        )
        self.ledger.events.write(
            "RESTART", job, ("Cause", cause.value), ("Previous job", str(previous)), ("Change", change),
            ("Result", f"submitted as job {job_id}" if job_id else "submission failed"),
            ("Restarts", f"{len(done) + 1} of at most {self.settings.max_restarts}"),
        )
        log.warning("%s ended (%s): restarted as job %s, %s", job, cause.value, job_id, change)

    def _memory(self, job: str, run_name: str, evaluation: bool, record: JobRecord) -> tuple[float, float] | None:
        """The memory the run first asked for and the memory its last attempt had, in GB."""
        changes = _memory_changes(record)
        if changes:
            return changes[0][0], changes[-1][1]
        mem_gb = self.capabilities.compute_of(job, run_name, evaluation).mem_gb
        return (mem_gb, mem_gb) if mem_gb is not None else None

    def _exclude(self, job: str, evaluation: bool, run_name: str) -> list[str]:
        """Leave the nodes the job ran on out of the sweep's later submissions for
        `exclude_hours`, unless that would leave out more than `max_excluded_share` of the
        partition; the nodes left out."""
        hours = self.settings.exclude_hours
        nodes = self.capabilities.nodes_of(job) if hours else []
        if not nodes:
            return []
        now = dt.datetime.now()
        state = self.ledger.state
        state.excluded_nodes = {node: state.excluded_nodes[node] for node in state.excluded_now(now)}  # the expired go
        partition = self.capabilities.compute_of(job, run_name, evaluation).partition
        size = self.capabilities.partition_size(partition)
        leaving_out = sorted({*state.excluded_nodes, *nodes})
        # Never every node: a restart that may run nowhere is refused at submission.
        allowed = min(int(self.settings.max_excluded_share * size), size - 1) if size else 0
        if len(leaving_out) > allowed:
            self.ledger.events.write(
                "EXCLUDE_NODES", job, ("Nodes", ", ".join(nodes)),
                ("Result", f"not left out: {len(leaving_out)} of the {size or '?'} nodes of partition {partition or '?'} "
                           f"would be, above remediation.max_excluded_share={self.settings.max_excluded_share}"),
            )
            return []
        until = timestamp(now + dt.timedelta(hours=hours))
        for node in nodes:
            state.excluded_nodes[node] = until
        self.ledger.events.write(
            "EXCLUDE_NODES", job, ("Nodes", ", ".join(nodes)), ("Until", until),
            ("Result", f"left out of the sweep's submissions ({len(leaving_out)} of {size} nodes of partition {partition})"),
        )
        return nodes

    def _forgive(self, job: str) -> None:
        """A job that completed on a node the sweep leaves out: the node works again."""
        forgiven = sorted(set(self.capabilities.nodes_of(job)) & set(self.ledger.state.excluded_nodes))
        for node in forgiven:
            del self.ledger.state.excluded_nodes[node]
        if forgiven:
            self.ledger.events.write("EXCLUDE_NODES", job, ("Nodes", ", ".join(forgiven)), ("Result", "forgiven: a job completed there"))

    # --- what the code broke ---------------------------------------------------------------

    def _count_error(self, job: str, record: JobRecord) -> None:
        errors = self._known_errors()
        signature = _signature(record)
        runs = errors.setdefault(signature, [])
        if job not in runs:
            runs.append(job)
        limit = self.settings.same_error_stop
        if limit and len(runs) >= limit and self.ledger.state.stopped is None:
            self._stop(signature, runs)

    def _known_errors(self) -> dict[str, list[str]]:
        """The errors the sweep's runs already died of (a monitor that resumed learns them from the logs)."""
        if self._errors is None:
            self._errors = {}
            for name, record in self.ledger.state.jobs.items():
                if record.cause is not None and record.cause.code_fault and record.kind is JobKind.TRAINING:
                    self._errors.setdefault(_signature(record), []).append(name)
        return self._errors

    def _stop(self, signature: str, runs: Sequence[str]) -> None:
        jobs = self.ledger.state.jobs
        self.ledger.state.stopped = f"the same error ended {len(runs)} runs: {signature}"
        queued = [name for name, record in jobs.items() if record.status in _QUEUED and record.job_id and name not in runs]
        for name in queued:
            self.capabilities.cancel(name)
        held = [*queued, *self.ledger.state.unsubmitted]
        first = jobs[runs[0]].stderr or jobs[runs[0]].job_dir or "-"
        lines = [
            f"ttlaunch stopped the sweep: the same error ended {len(runs)} runs ({', '.join(runs)}):",
            f"  {signature}",
            f"  first traceback: {first}",
            f"  held back: {len(held)} runs ({', '.join(held) or 'none'}): queued ones cancelled, none submitted more; runs already running go on",
            "  after a fix, the same launch command submits what was held back",
        ]
        self.ledger.events.write(
            "SWEEP_STOPPED", "Same error in several runs", ("Error", signature), ("Runs", ", ".join(runs)),
            ("First traceback", first), ("Held back", ", ".join(held) or "none"),
            ("Next", "after a fix, the same launch command submits what was held back"),
        )
        log.error("%s", lines[0])
        print("ttlaunch: " + "\n".join(lines), file=sys.stderr, flush=True)  # the user's to read, whatever the log level


def _memory_changes(record: JobRecord) -> list[tuple[float, float]]:
    """The run's memory restarts so far, each (GB before, GB after), oldest first."""
    return [(float(entry["mem_gb"][0]), float(entry["mem_gb"][1])) for entry in record.restarts if "mem_gb" in entry]


def _signature(record: JobRecord) -> str:
    """The error a run died of, the same for the same bug in every run; its cause's name
    when its log names no exception (a NaN loss)."""
    text = without_wrapper(read_tail(Path(record.stderr))) if record.stderr else ""
    return error_signature(text) or (record.cause.value if record.cause is not None else "unknown")
