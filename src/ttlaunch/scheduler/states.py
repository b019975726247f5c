"""Our job states, and the one table that maps scheduler state strings to them."""

from __future__ import annotations

import enum


class JobState(str, enum.Enum):
    """A job's state. Each is its SLURM-style word: it compares equal to that word and is
    written as it in jobs.json, the event log and tables."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    REQUEUED = "REQUEUED"
    SUSPENDED = "SUSPENDED"
    SUBMIT_FAILED = "SUBMIT_FAILED"
    # ttlaunch's own, never SLURM's: stopped by the sweep's early stopping (its measure at a
    # rung was behind), its checkpoints kept; an end as intended, like COMPLETED.
    PRUNED = "PRUNED"
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        return self.value

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def as_intended(self) -> bool:
        """Ended as the sweep meant: trained to the end, or stopped early by its pruning."""
        return self in (JobState.COMPLETED, JobState.PRUNED)


# The states SLURM counts as finished (IS_JOB_FINISHED): a job preempted without requeue ends
# PREEMPTED; a requeued job starts again from any of them.
_TERMINAL = {
    JobState.COMPLETED,
    JobState.FAILED,
    JobState.CANCELLED,
    JobState.TIMEOUT,
    JobState.OUT_OF_MEMORY,
    JobState.NODE_FAIL,
    JobState.PREEMPTED,
    JobState.SUBMIT_FAILED,
    JobState.PRUNED,
}

# Scheduler state string -> our state. SLURM's long and compact forms (squeue %T / %t,
# sacct State) and submitit's local executor states all live here, nowhere else.
STATE_TABLE: dict[str, JobState] = {
    "PENDING": JobState.PENDING, "PD": JobState.PENDING,
    "CONFIGURING": JobState.PENDING, "CF": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING, "RH": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING, "RF": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING, "RD": JobState.PENDING,
    "RUNNING": JobState.RUNNING, "R": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING, "CG": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING, "SO": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING, "SI": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "COMPLETED": JobState.COMPLETED, "CD": JobState.COMPLETED,
    "FAILED": JobState.FAILED, "F": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED, "BF": JobState.FAILED,
    "DEADLINE": JobState.TIMEOUT, "DL": JobState.TIMEOUT,
    "CANCELLED": JobState.CANCELLED, "CA": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED, "RV": JobState.CANCELLED,
    "SPECIAL_EXIT": JobState.FAILED, "SE": JobState.FAILED,
    "TIMEOUT": JobState.TIMEOUT, "TO": JobState.TIMEOUT,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY, "OOM": JobState.OUT_OF_MEMORY,
    "NODE_FAIL": JobState.NODE_FAIL, "NF": JobState.NODE_FAIL,
    "PREEMPTED": JobState.PREEMPTED, "PR": JobState.PREEMPTED,
    "REQUEUED": JobState.REQUEUED, "RQ": JobState.REQUEUED,
    "SUSPENDED": JobState.SUSPENDED, "S": JobState.SUSPENDED,
    "STOPPED": JobState.SUSPENDED, "ST": JobState.SUSPENDED,
    # submitit's local executor: FINISHED is refined by the job's result (see parse_state).
    "INTERRUPTED": JobState.CANCELLED,
    "UNKNOWN": JobState.UNKNOWN,
}


def parse_state(text: str) -> JobState:
    """'CANCELLED by 1000' -> CANCELLED; unknown strings -> UNKNOWN."""
    word = text.strip().split(" ", 1)[0].rstrip("+").upper()
    return STATE_TABLE.get(word, JobState.UNKNOWN)
