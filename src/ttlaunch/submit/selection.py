"""Which of a sweep's jobs a launch submits, from what the sweep's state says of each.

A job is submitted when it never was (no record, or its submission was rejected), or, only
when asked (`resubmit_failed=true`), when its last attempt ended without completing. A job
still queued or running is re-attached, never submitted again; a completed one is skipped.
A job ttlaunch itself stopped (Ctrl-C of a local launch, a cancel it issued) did not fail:
it is submitted again and resumes from disk. A job the sweep's early stopping pruned is done
while pruning is on; a launch with pruning off (`resume_pruned`) submits it again, and it
resumes from its checkpoints.

Asked to run every job again (`rerun`: hydra.launcher.relaunch=rerun, Hydra's own way for
any app), a launch submits every job that ended, completed or not; still queued or running
ones are re-attached all the same.

A job whose run changed since it was submitted (its parameters, compute or command) is not
counted as done: the launch refuses, naming what changed, unless asked to train it again
(`resubmit_changed=true`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

from ttlaunch.records.jobs_file import JobRecord
from ttlaunch.scheduler.states import JobState
from ttlaunch.scheduler.submitit_files import submitted_job_ids
from ttlaunch.submit.sweep_jobs import JobSpec


@dataclass
class Selection:
    submit: list[JobSpec] = field(default_factory=list)
    attach: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # ended without completing, not resubmitted
    changed: list[str] = field(default_factory=list)  # submitted again: their run changed
    resumed: list[str] = field(default_factory=list)  # submitted again: ttlaunch had stopped them
    rerun: list[str] = field(default_factory=list)  # submitted again: they ended, and every job runs again
    pruned: list[str] = field(default_factory=list)  # not submitted: pruned, and pruning is on
    unpruned: list[str] = field(default_factory=list)  # submitted again: pruned, and pruning is off now


def select_jobs(
    jobs: Sequence[JobSpec], records: Mapping[str, JobRecord], resubmit_failed: bool, changed: Collection[str] = (),
    rerun: bool = False, resume_pruned: bool = False,
) -> Selection:
    """`changed`: jobs whose run changed since their submission, to train again once ended."""
    selection = Selection()
    for job in jobs:
        record = records.get(job.name)
        if record is None or record.job_id is None:
            selection.submit.append(job)
            continue
        state = record.status
        if rerun and state.terminal:
            selection.submit.append(job)
            selection.rerun.append(job.name)
        elif job.name in changed and state.terminal:
            selection.submit.append(job)
            selection.changed.append(job.name)
        elif state is JobState.CANCELLED and record.stopped_by_ttlaunch:
            selection.submit.append(job)
            selection.resumed.append(job.name)
        elif state is JobState.PRUNED and resume_pruned:
            selection.submit.append(job)
            selection.unpruned.append(job.name)
        elif state is JobState.PRUNED:
            selection.pruned.append(job.name)
        elif state is JobState.COMPLETED:
            selection.completed.append(job.name)
        elif not state.terminal:
            selection.attach.append(job.name)
        elif resubmit_failed:
            selection.submit.append(job)
        else:
            selection.failed.append(job.name)
    return selection


def spec_changes(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:  # JSON specs, compared as values
    """What differs between what a job was submitted with and what its run asks for now
    (both LaunchInputs.submission_spec); nothing for a job recorded before specs were kept."""
    if not recorded:
        return []
    changes = []
    for section, prefix in (("parameters", ""), ("compute", "compute.")):
        old, new = recorded.get(section) or {}, current.get(section) or {}
        for key in sorted(set(old) | set(new), key=str):
            if old.get(key) != new.get(key):
                changes.append(f"{prefix}{key}: {old.get(key, '(none)')} -> {new.get(key, '(none)')}")
    if not changes and recorded.get("command") != current.get("command"):
        changes.append(f"the payload's command: {' '.join(map(str, current.get('command') or []))}")
    if "files" in recorded:  # kept since ttlaunch records what a job's files were at submission
        old, new = recorded["files"] or {}, current.get("files") or {}
        for name in sorted(set(old) | set(new)):
            if name not in new:
                changes.append(f"{name} is gone since submission")
            elif old.get(name) != new[name]:
                changes.append(f"{name} {'changed' if name in old else 'appeared'} since submission")
    return changes


# Any: JSON specs, compared as values.
def changed_jobs(jobs: Sequence[JobSpec], records: Mapping[str, JobRecord], specs: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """Job name -> what changed, for each job submitted with something else than it would be now."""
    changed = {}
    for job in jobs:
        record = records.get(job.name)
        if record is not None and record.job_id is not None:
            changes = spec_changes(record.submitted_with, specs[job.name])
            if changes:
                changed[job.name] = changes
    return changed


def unrecorded_job_id(job_dir: Path) -> str | None:
    """The job id of a submission the state file missed (a launcher killed between sbatch
    and writing jobs.json)."""
    ids = submitted_job_ids(job_dir)
    return ids[-1] if ids else None
