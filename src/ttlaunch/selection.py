"""Which of a sweep's jobs a launch submits, from what the sweep's state says of each.

A job is submitted when it never was (no record, or its submission was rejected), or, only
when asked (`resubmit_failed=true`), when its last attempt ended without completing. A job
still queued or running is re-attached, never submitted again; a completed one is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from ttlaunch.state import JobRecord
from ttlaunch.states import JobState
from ttlaunch.sweep import JobSpec


@dataclass
class Selection:
    submit: list[JobSpec] = field(default_factory=list)
    attach: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # ended without completing, not resubmitted


def select_jobs(jobs: Sequence[JobSpec], records: Mapping[str, JobRecord], resubmit_failed: bool) -> Selection:
    selection = Selection()
    for job in jobs:
        record = records.get(job.name)
        if record is None or record.job_id is None:
            selection.submit.append(job)
            continue
        state = JobState(record.status)
        if state is JobState.COMPLETED:
            selection.completed.append(job.name)
        elif not state.terminal:
            selection.attach.append(job.name)
        elif resubmit_failed:
            selection.submit.append(job)
        else:
            selection.failed.append(job.name)
    return selection


def unrecorded_job_id(job_dir: Path) -> str | None:
    """The job id of a submission the state file missed (a launcher killed between sbatch
    and writing jobs.json): submitit names each script after its job once sbatch answered."""
    ids = [path.name.split("_", 1)[0] for path in (job_dir / "submitit").glob("*_submission.sh")]
    ids = [job_id for job_id in ids if job_id.isdigit()]
    return max(ids, key=int) if ids else None
