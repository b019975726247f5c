"""How what one poll saw of a job changes its record: requeues SLURM made since the last
poll, and a change of state with its times, exit code and reason. Each returns the event
log entries that say so, for the monitor to write together with the record."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from ttlaunch.base.times import format_elapsed, parse_timestamp, timestamp
from ttlaunch.inputs.failure_causes import CausePattern, classify
from ttlaunch.job.failure import failure_reason, payload_exit_code, read_tail, without_wrapper
from ttlaunch.job.requeue import read_requeues
from ttlaunch.monitor.scores import headline, read_scores
from ttlaunch.records.checkpoints import epoch_dirs
from ttlaunch.records.event_log import Entry
from ttlaunch.records.jobs_file import JobKind, JobRecord
from ttlaunch.scheduler.states import JobState
from ttlaunch.scheduler.submitit_files import returned_value

if TYPE_CHECKING:
    from ttlaunch.backend.observation import Observation

log = logging.getLogger(__name__)

# Why a run of a job ended in a requeue, from accounting's state of that run.
_REQUEUE_REASONS = {
    JobState.NODE_FAIL: "node failure",
    JobState.PREEMPTED: "preempted",
    JobState.TIMEOUT: "timeout",
    JobState.REQUEUED: "requeued by scontrol or the scheduler",
}


def note_requeues(record: JobRecord, observation: Observation, ended_runs: Callable[[str], list[JobState]]) -> list[Entry]:
    """A job SLURM restarted since the last poll: one STATE_CHANGE to REQUEUED per
    requeue, with the attempt that begins and why the last one ended (`ended_runs`: the
    backend's account of how each run of a job ended)."""
    if observation.restarts is None or observation.restarts + 1 <= record.attempt:
        return []
    entries: list[Entry] = []
    for attempt in range(record.attempt + 1, observation.restarts + 2):
        reason = _requeue_reason(record, attempt - 1, ended_runs)
        record.requeues.append({"attempt": attempt - 1, "reason": reason, "at": timestamp()})
        entries.append(("STATE_CHANGE", record.name, [
            ("Previous", record.status.value), ("Current", JobState.REQUEUED.value), ("Job ID", record.job_id),
            ("Attempt", f"{attempt} (attempt {attempt - 1} ended: {reason})"),
        ]))
        log.info("%s: requeued (%s); attempt %d", record.name, reason, attempt)
        record.status, record.attempt = JobState.REQUEUED, attempt
    return entries


def _requeue_reason(record: JobRecord, ended_attempt: int, ended_runs: Callable[[str], list[JobState]]) -> str:
    """What the job wrote when it requeued itself; else what accounting says of that run."""
    if record.job_dir:
        for entry in read_requeues(Path(record.job_dir)):
            if entry.attempt == ended_attempt:
                return entry.reason
    runs = ended_runs(str(record.job_id))
    if len(runs) >= ended_attempt:
        return _REQUEUE_REASONS.get(runs[ended_attempt - 1], "requeued")
    return "requeued"


def apply_state(
    record: JobRecord, observation: Observation, inspect_evaluations: bool = True, app_jobs: bool = False,
    cause_patterns: Sequence[CausePattern] = (),
) -> list[Entry]:
    """Apply a change of state to the record; its STATE_CHANGE entry (none without a change).
    `inspect_evaluations`: evaluations run `inspect eval`, and one that completed has its
    scores read from inspect's log (without a usable log it failed). `app_jobs`: the jobs run
    any Hydra app's task function, and one that completed has what it returned read back.
    An end without completing gets its cause (the user's `cause_patterns` searched first)."""
    previous, current = record.status, observation.state
    if current is previous or current is JobState.UNKNOWN:
        return []
    outcome_field: list[tuple[str, object]] = []
    ended = current in (JobState.COMPLETED, JobState.FAILED)
    if inspect_evaluations and record.kind is JobKind.EVALUATION and ended and record.output_dir:
        # Each task's scores, whatever became of the others (a failed job keeps those it has).
        record.scores, problems = read_scores(Path(record.output_dir), record.tasks)
        if record.scores:
            outcome_field = [("Scores", headline(record.scores, record.tasks))]
        # Ran to the end without every result: not completed; or some tasks failed, others scored.
        if problems and (current is JobState.COMPLETED or record.scores):
            current = JobState.FAILED
            record.error = "; ".join(
                why if len(record.tasks) == 1 else f"{task}: {why}" for task, why in problems.items()
            )
    if record.pruned_at is not None and current.terminal and current is not JobState.COMPLETED:
        current = JobState.PRUNED  # the early stop's cancel: an end as intended, not a failure
    if app_jobs and current is JobState.COMPLETED and record.job_dir and record.job_id:
        record.returned = returned_value(Path(record.job_dir), record.job_id)
        if record.returned is not None:
            outcome_field = [("Returned", record.returned)]
    record.status = current
    fields: list[tuple[str, object]] = [("Previous", previous.value), ("Current", current.value), ("Job ID", record.job_id)]
    if current is JobState.RUNNING or (current.terminal and record.started is None):
        record.started = observation.started or timestamp()
        if current is JobState.RUNNING:
            fields.append(("Started", record.started))
    if current.terminal:
        record.completed = observation.completed or timestamp()
        if observation.started:
            record.started = observation.started  # accounting's time beats our sighting
        seconds_run: float
        if observation.elapsed_s is not None:
            seconds_run = observation.elapsed_s
        else:
            seconds_run = _seconds_between(record.started or record.submitted, record.completed)
        record.elapsed, record.elapsed_s = format_elapsed(seconds_run), seconds_run
        record.exit_code = observation.exit_code
        if record.output_dir:
            record.checkpoints = [str(path) for path in epoch_dirs(Path(record.output_dir))]
        fields += [("Completed", record.completed), ("Elapsed", record.elapsed), *outcome_field]
        if current is JobState.PRUNED:
            fields.append(("Pruned at", f"rung {record.pruned_at}"))
        elif current is not JobState.COMPLETED and current is not JobState.SUBMIT_FAILED:
            tail = read_tail(Path(record.stderr)) if record.stderr else ""
            if tail and not record.error and not record.stopped_by_ttlaunch:
                record.error = failure_reason(tail)
                code = payload_exit_code(tail)
                if record.exit_code is None and code is not None:  # local jobs: no scheduler to say it
                    record.exit_code = f"{code}:0"
            # SLURM's and the kernel's messages are in the job's stderr; the payload's may be in either.
            output = read_tail(Path(record.stdout)) if record.stdout and record.stdout != record.stderr else ""
            last_loss = record.training.loss if record.training is not None else None
            record.cause = classify(
                current, f"{output}\n{without_wrapper(tail)}", record.stopped_by_ttlaunch, last_loss, cause_patterns
            )
            if record.exit_code:
                fields.append(("Exit code", record.exit_code))
            fields.append(("Cause", record.cause.value))
            if record.error:
                fields.append(("Reason", record.error))
            fields.append(("Log", record.stderr))
    return [("STATE_CHANGE", record.name, fields)]


def _seconds_between(start: str | None, end: str) -> float:
    began, ended = parse_timestamp(start), parse_timestamp(end)
    return (ended - began).total_seconds() if began and ended else 0.0
