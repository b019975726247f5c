"""The one place that runs SLURM's commands (squeue, sacct, seff, scontrol, scancel), and the pure parsers of
their queue and accounting output beside it (compute metrics: ttlaunch.scheduler.metrics).

Every failure raises SchedulerCommandError naming the command, its exit code, stdout and
stderr; nothing is swallowed into an UNKNOWN state. An answer none of which can be read is
one too (UnreadableAnswer); a line or a figure that cannot be read costs only that line or
figure (ttlaunch.scheduler.figure_readers). (Submission itself goes through submitit's executor, which runs
sbatch and reports its errors.)
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Iterable, Sequence, TypeVar

from ttlaunch.scheduler.figure_readers import UnreadableOutput, count, duration_s, exit_code, scheduler_time
from ttlaunch.scheduler.metrics import USAGE_FIELDS, Usage, parse_seff, parse_usages
from ttlaunch.scheduler.states import JobState, parse_state

if TYPE_CHECKING:
    from ttlaunch.scheduler.metrics import ComputeMetrics

T = TypeVar("T")

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


class UnreadableAnswer(SchedulerCommandError):
    """The command succeeded, but nothing it printed is in the form asked for."""

    def __init__(self, argv: Sequence[str], stdout: str, problem: str) -> None:
        super().__init__(argv, 0, stdout, problem)

    def __str__(self) -> str:
        return f"`{' '.join(self.argv)}` answered in a form ttlaunch cannot read: {self.stderr}"


# What sacct says, exiting 1, when the cluster does not keep the records asked for.
_DISABLED_MESSAGES = ("accounting storage is disabled", "job completion is disabled")


def decode(output: bytes | None) -> str:
    """A command's output as text; bytes that are not UTF-8 become U+FFFD, never an error."""
    return (output or b"").decode("utf-8", errors="replace")


def execute(argv: Sequence[str], timeout: float = COMMAND_TIMEOUT_S) -> str:
    """Run a scheduler command; its stdout, or SchedulerCommandError."""
    try:
        result = subprocess.run(list(argv), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise SchedulerCommandError(argv, None, decode(err.stdout), decode(err.stderr)) from None
    except OSError as err:  # the command is not installed
        raise SchedulerCommandError(argv, None, "", str(err)) from None
    stdout, stderr = decode(result.stdout), decode(result.stderr)
    if result.returncode != 0:
        said = (stderr + stdout).lower()
        kind = AccountingDisabled if any(text in said for text in _DISABLED_MESSAGES) else SchedulerCommandError
        raise kind(argv, result.returncode, stdout, stderr)
    return stdout


def read(argv: Sequence[str], parser: Callable[[str], T]) -> T:
    """Run a command and parse its output; an unreadable answer is a failed command."""
    stdout = execute(argv)
    try:
        return parser(stdout)
    except UnreadableOutput as err:
        raise UnreadableAnswer(argv, stdout, str(err)) from None


@dataclass(frozen=True)
class QueueEntry:
    job_id: str
    state: JobState
    name: str
    restarts: int | None = 0  # requeues so far; None when squeue's figure is unreadable


@dataclass(frozen=True)
class AccountingEntry:
    """One row of sacct; each time, the exit code and the elapsed time None when unreadable."""

    job_id: str
    name: str
    state: JobState
    raw_state: str
    exit_code: str | None
    submit: str | None
    start: str | None
    end: str | None
    elapsed_s: int | None
    # How many times the job ran: a job requeued has one row per run (`sacct -D`); by job id,
    # its latest run with the count, and elapsed_s the time of all its runs.
    runs: int = 1


# A job id as squeue and sacct print it: 123, an array task 123_4, a het job component 123+0.
_JOB_ID_RE = re.compile(r"\d+(?:_\d+)?(?:\+\d+)?", re.ASCII)
# SLURM keeps the restart count in 16 bits: a larger one is garbage.
MAX_RESTARTS = 0xFFFF


def _rows(text: str, width: int, limit: int | None = None) -> list[list[str]]:
    """The `|`-separated lines of `text` with `width` fields (the last taking any rest when
    `limit` splits). Lines without a separator (a banner) are not data; when data lines
    exist and none has the width asked for, the output is not ours to read."""
    lines = [line for line in text.splitlines() if "|" in line]
    rows = [fields for fields in (line.split("|", limit if limit is not None else -1) for line in lines) if len(fields) == width]
    if lines and not rows:
        raise UnreadableOutput(f"no line has the {width} fields asked for: {lines[0][:200]!r}")
    return rows


def parse_squeue(text: str) -> dict[str, QueueEntry]:
    """`squeue -h -O '<SQUEUE_FIELDS>'` output -> job id -> entry. A line that is not a job's
    is skipped; an unreadable state is UNKNOWN (the monitor ignores it), a restart count None."""
    entries: dict[str, QueueEntry] = {}
    for job_id, state, restarts, name in _rows(text, 4, limit=3):
        job_id = job_id.strip()
        if _JOB_ID_RE.fullmatch(job_id):
            entries[job_id] = QueueEntry(job_id, parse_state(state), name, count(restarts, MAX_RESTARTS))
    return entries


def parse_sacct_rows(text: str) -> list[AccountingEntry]:
    """`sacct -X -P -n --format=<SACCT_FIELDS>` output -> entries in order (steps and lines
    that are not a job's skipped)."""
    entries: list[AccountingEntry] = []
    for row in _rows(text, len(SACCT_FIELDS)):
        fields = dict(zip(SACCT_FIELDS, row))
        job_id = fields["JobID"].strip()
        # A step (batch, extern, 0) fails the match: the allocation's own line says it all.
        if not _JOB_ID_RE.fullmatch(job_id):
            continue
        entries.append(
            AccountingEntry(
                job_id=job_id,
                name=fields["JobName"],
                state=parse_state(fields["State"]),
                raw_state=fields["State"],
                exit_code=exit_code(fields["ExitCode"]),
                submit=scheduler_time(fields["Submit"]),
                start=scheduler_time(fields["Start"]),
                end=scheduler_time(fields["End"]),
                elapsed_s=duration_s(fields["Elapsed"]),
            )
        )
    return entries


def parse_sacct(text: str) -> dict[str, AccountingEntry]:
    """The same, by job id: a job's latest run, with `runs` its number of runs and
    `elapsed_s` their sum (None when a run's is unreadable)."""
    by_job: dict[str, AccountingEntry] = {}
    for entry in parse_sacct_rows(text):
        earlier = by_job.get(entry.job_id)
        if earlier is not None:
            both = (earlier.elapsed_s, entry.elapsed_s)
            total = both[0] + both[1] if both[0] is not None and both[1] is not None else None
            entry = replace(entry, runs=earlier.runs + 1, elapsed_s=total)
        by_job[entry.job_id] = entry
    return by_job


def squeue(user: str) -> dict[str, QueueEntry]:
    """All of `user`'s queued and running jobs, in one call."""
    return read(["squeue", "-u", user, "-h", "-O", SQUEUE_FIELDS], parse_squeue)


def _sacct_argv(job_ids: Iterable[str], *flags: str) -> list[str]:
    """One `sacct` call for the given jobs' allocations, with extra flags."""
    ids = ",".join(sorted(set(job_ids)))
    return ["sacct", *flags, "-X", "-P", "-n", "-j", ids, f"--format={','.join(SACCT_FIELDS)}"]


def sacct(job_ids: Iterable[str]) -> dict[str, AccountingEntry]:
    """Accounting for the given jobs, every run of each (requeues included), in one call."""
    ids = list(job_ids)
    return read(_sacct_argv(ids, "-D"), parse_sacct) if ids else {}


def sacct_completed(job_ids: Iterable[str]) -> dict[str, AccountingEntry]:
    """The same from the job completion log (`sacct -c`), for clusters without accounting."""
    ids = list(job_ids)
    return read(_sacct_argv(ids, "-c"), parse_sacct) if ids else {}


def run_history(job_id: str) -> list[AccountingEntry]:
    """Every run of one job, oldest first: a requeued job has one row per start (`sacct -D`)."""
    return [entry for entry in read(_sacct_argv([job_id], "-D"), parse_sacct_rows) if entry.job_id == job_id]


def cancel(job_id: str) -> None:
    execute(["scancel", job_id])


def requeue(job_id: str) -> None:
    """Put a running job back into the queue (it restarts with the same id)."""
    execute(["scontrol", "requeue", job_id])


def seff(job_id: str) -> ComputeMetrics | None:
    """seff's report of an ended job; None while it has no data (SchedulerCommandError when
    seff fails)."""
    return read(["seff", job_id], parse_seff)


def usage(job_ids: Iterable[str]) -> dict[str, Usage]:
    """Ended jobs' compute metrics from sacct's usage lines (allocation and steps), and their
    time limits in seconds, by job id, in one call (jobs accounting has no line of are left out)."""
    ids = ",".join(sorted(set(job_ids)))
    return read(["sacct", "-P", "-n", "-j", ids, f"--format={','.join(USAGE_FIELDS)}"], parse_usages) if ids else {}


def parse_node_list(text: str) -> str | None:
    """`sacct -X -P -n -j <id> --format=NodeList` output -> the job's node list (`gpu[01-02]`);
    None when it ran on none (`None assigned`)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines and lines[-1] not in ("None assigned", "(null)") else None


def nodes_of(job_id: str) -> list[str]:
    """The hosts the job's newest run ran on (what sacct knows of it), each by name."""
    node_list = read(["sacct", "-X", "-P", "-n", "-j", job_id, "--format=NodeList"], parse_node_list)
    return hostnames(node_list) if node_list else []


def parse_node_count(text: str) -> int | None:
    """`sinfo -h -p <partition> -o %D` output (a node count per group of nodes in one state)
    -> the partition's nodes; None when sinfo named none."""
    counts = [int(line) for line in (line.strip() for line in text.splitlines()) if line.isdigit()]
    return sum(counts) if counts else None


def partition_size(partition: str) -> int | None:
    """How many nodes the partition has."""
    return read(["sinfo", "-h", "-p", partition, "-o", "%D"], parse_node_count)


def hostnames(nodelist: str) -> list[str]:
    """The hosts of a SLURM node list (node[01-03],gpu7), in order, as SLURM expands it."""
    return [line.strip() for line in execute(["scontrol", "show", "hostnames", nodelist]).splitlines() if line.strip()]
