"""What a backend learns of a job at one look, and what the job's own result file says."""

from __future__ import annotations

import datetime as dt
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

from ttlaunch.base.times import timestamp
from ttlaunch.records.jobs_file import JobRecord
from ttlaunch.scheduler.states import JobState
from ttlaunch.scheduler.submitit_files import result_path


@dataclass(frozen=True)
class Observation:
    """What one poll learnt of a job; times and exit code when accounting has them."""

    state: JobState
    started: str | None = None
    completed: str | None = None
    elapsed_s: int | None = None
    exit_code: str | None = None
    # Requeues so far: squeue's count while the job is queued, accounting's runs once it left
    # (a requeue between two polls is counted when the job ends).
    restarts: int | None = None


def result_file(record: JobRecord) -> Path | None:
    """submitit's result pickle of the job, written when its function returned or raised."""
    if not (record.stdout and record.job_id):
        return None
    return result_path(Path(record.stdout).parent, str(record.job_id))


def result_state(record: JobRecord) -> JobState | None:
    """COMPLETED or FAILED from the job's result file; None when it left none."""
    path = result_file(record)
    if path is None or not path.is_file():
        return None
    try:
        with path.open("rb") as handle:
            outcome = pickle.load(handle)[0]
    except Exception:  # a truncated file: the job died while writing it
        return None
    return JobState.COMPLETED if outcome == "success" else JobState.FAILED


def result_time(record: JobRecord) -> str | None:
    """When the job wrote its result (it ended then); None without one."""
    written = modified(result_file(record))
    return timestamp(dt.datetime.fromtimestamp(written)) if written is not None else None


def modified(path: str | Path | None) -> float | None:
    """The file's mtime; None when there is none."""
    try:
        return os.stat(path).st_mtime if path is not None else None
    except OSError:
        return None
