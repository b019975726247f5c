"""The one place that runs SLURM's commands (squeue, sacct, seff, scontrol, scancel), and the pure parsers of
their queue and accounting output beside it (compute metrics: ttlaunch.metrics).

Every failure raises SchedulerCommandError naming the command, its exit code, stdout and
stderr; nothing is swallowed into an UNKNOWN state. (Submission itself goes through submitit's
executor, which runs sbatch and reports its errors.)
"""

from __future__ import annotations

import csv
import subprocess
from dataclasses import dataclass
from typing import Iterable, Sequence

from ttlaunch.states import JobState, parse_state

COMMAND_TIMEOUT_S = 60.0
# Job id, long state, restart count (requeues so far), name last (it may hold anything).
SQUEUE_FIELDS = "JobID:|,State:|,RestartCnt:|,Name:"
SACCT_FIELDS = ("JobID", "JobName", "State", "ExitCode", "Submit", "Start", "End", "Elapsed")


class SchedulerCommandError(RuntimeError):
    def __init__(self, argv: Sequence[str], returncode: int | None, stdout: str, stderr: str) -> None:
        super().__init__(argv, returncode, stdout, stderr)
        self.argv, self.returncode, self.stdout, self.stderr = list(argv), returncode, stdout, stderr

    def __str__(self) -> str:
        code = "timed out" if self.returncode is None else f"exit code {self.returncode}"
        return (
            f"`{' '.join(self.argv)}` failed ({code}); stderr: {self.stderr.strip() or '-'}; "
            f"stdout: {self.stdout.strip() or '-'}"
        )


class AccountingDisabled(SchedulerCommandError):
    """The cluster keeps no accounting (or, for `sacct -c`, no job completion log)."""


# What sacct says, exiting 1, when the cluster does not keep the records asked for.
_DISABLED_MESSAGES = ("accounting storage is disabled", "job completion is disabled")


def run(argv: Sequence[str], timeout: float = COMMAND_TIMEOUT_S) -> str:
    """Run a scheduler command; its stdout, or SchedulerCommandError."""
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise SchedulerCommandError(argv, None, str(err.stdout or ""), str(err.stderr or "")) from None
    except OSError as err:  # the command is not installed
        raise SchedulerCommandError(argv, None, "", str(err)) from None
    if result.returncode != 0:
        said = (result.stderr + result.stdout).lower()
        kind = AccountingDisabled if any(text in said for text in _DISABLED_MESSAGES) else SchedulerCommandError
        raise kind(argv, result.returncode, result.stdout, result.stderr)
    return result.stdout


@dataclass(frozen=True)
class QueueEntry:
    job_id: str
    state: JobState
    name: str
    restarts: int = 0


@dataclass(frozen=True)
class AccountingEntry:
    job_id: str
    name: str
    state: JobState
    raw_state: str
    exit_code: str
    submit: str | None
    start: str | None
    end: str | None
    elapsed: str


def parse_squeue(text: str) -> dict[str, QueueEntry]:
    """`squeue -h -O '<SQUEUE_FIELDS>'` output -> job id -> entry."""
    entries: dict[str, QueueEntry] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        job_id, state, restarts, name = line.split("|", 3)
        job_id = job_id.strip()
        count = restarts.strip()
        entries[job_id] = QueueEntry(job_id, parse_state(state), name, int(count) if count.isdigit() else 0)
    return entries


def _time(value: str) -> str | None:
    return None if value in ("", "Unknown", "None") else value.replace("T", " ")


def parse_sacct_rows(text: str) -> list[AccountingEntry]:
    """`sacct -X -P -n --format=<SACCT_FIELDS>` output -> entries in order (steps skipped)."""
    entries: list[AccountingEntry] = []
    for row in csv.reader(text.splitlines(), delimiter="|"):
        if len(row) != len(SACCT_FIELDS):
            continue
        fields = dict(zip(SACCT_FIELDS, row))
        if "." in fields["JobID"]:  # a step (batch, extern, 0): the allocation's own line says it all
            continue
        entries.append(
            AccountingEntry(
                job_id=fields["JobID"],
                name=fields["JobName"],
                state=parse_state(fields["State"]),
                raw_state=fields["State"],
                exit_code=fields["ExitCode"],
                submit=_time(fields["Submit"]),
                start=_time(fields["Start"]),
                end=_time(fields["End"]),
                elapsed=fields["Elapsed"],
            )
        )
    return entries


def parse_sacct(text: str) -> dict[str, AccountingEntry]:
    """The same, by job id (the latest row of a job wins)."""
    return {entry.job_id: entry for entry in parse_sacct_rows(text)}


def squeue(user: str) -> dict[str, QueueEntry]:
    """All of `user`'s queued and running jobs, in one call."""
    return parse_squeue(run(["squeue", "-u", user, "-h", "-O", SQUEUE_FIELDS]))


def _sacct_output(job_ids: Iterable[str], *flags: str) -> str:
    """One `sacct` call for the given jobs' allocations, with extra flags ("" for no jobs)."""
    ids = sorted(set(job_ids))
    if not ids:
        return ""
    return run(["sacct", *flags, "-X", "-P", "-n", "-j", ",".join(ids), f"--format={','.join(SACCT_FIELDS)}"])


def sacct(job_ids: Iterable[str]) -> dict[str, AccountingEntry]:
    """Accounting for the given jobs, in one call."""
    return parse_sacct(_sacct_output(job_ids))


def sacct_completed(job_ids: Iterable[str]) -> dict[str, AccountingEntry]:
    """The same from the job completion log (`sacct -c`), for clusters without accounting."""
    return parse_sacct(_sacct_output(job_ids, "-c"))


def run_history(job_id: str) -> list[AccountingEntry]:
    """Every run of one job, oldest first: a requeued job has one row per start (`sacct -D`)."""
    return [entry for entry in parse_sacct_rows(_sacct_output([job_id], "-D")) if entry.job_id == job_id]


def cancel(job_id: str) -> None:
    run(["scancel", job_id])


def requeue(job_id: str) -> None:
    """Put a running job back into the queue (it restarts with the same id)."""
    run(["scontrol", "requeue", job_id])


def seff(job_id: str) -> str:
    """seff's report of an ended job (raises SchedulerCommandError when seff has nothing)."""
    return run(["seff", job_id])


def usage(job_id: str) -> str:
    """sacct's usage lines (allocation and steps) of one job, for ttlaunch.metrics.parse_usage."""
    from ttlaunch.metrics import USAGE_FIELDS

    return run(["sacct", "-P", "-n", "-j", job_id, f"--format={','.join(USAGE_FIELDS)}"])
