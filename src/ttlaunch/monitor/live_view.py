"""The table of a sweep's runs, states, elapsed times and training progress: live (rich)
while monitoring in a terminal, plain text otherwise (logs, `python -m ttlaunch.status`
piped), where a running job's progress is logged now and then instead."""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from collections import Counter
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator, TextIO, Union

from ttlaunch.base.times import format_elapsed, parse_timestamp
from ttlaunch.monitor.scores import headline
from ttlaunch.records.jobs_file import JobRecord, SweepState
from ttlaunch.scheduler.states import JobState

if TYPE_CHECKING:  # rich loads only where a table is drawn
    from rich.live import Live
    from rich.table import Table

COLUMNS = ("Run", "Status", "Job ID", "Started", "Elapsed")
# A job the launch in progress has yet to submit (SweepState.unsubmitted).
NOT_SUBMITTED = "NOT SUBMITTED"
_STYLES = {
    "COMPLETED": "green", "PRUNED": "magenta", "RUNNING": "cyan", "PENDING": "yellow", "REQUEUED": "yellow", NOT_SUBMITTED: "dim",
}


def elapsed_of(record: JobRecord, now: dt.datetime) -> str:
    """The recorded elapsed time of an ended job; the time since it started for a running one."""
    if record.elapsed:
        return record.elapsed
    started = parse_timestamp(record.started)
    if record.status is JobState.RUNNING and started is not None:
        return format_elapsed((now - started).total_seconds())
    return "-"


# A failed job's reason, shortened to keep the table on one screen.
_NOTE_WIDTH = 80
# Without a terminal: a running job's progress is logged at most this often.
PROGRESS_EVERY_S = 180.0

log = logging.getLogger(__name__)


def progress_of(record: JobRecord) -> str:
    """`4/6, loss 6.51, 12s left`: the newest step of the total, the loss there and, while
    the job runs, the time left at its pace; "-" before its first logged step. An
    evaluation's scores once it has them: `includes/accuracy 0.75 (4 samples)`. What an
    app's task function returned, after its training progress when its metrics are read:
    `returned 0.25`, `300/300, loss 0.17, returned 0`."""
    if record.scores:
        return headline(record.scores, record.tasks)
    parts = []
    training = record.training
    if training is not None and training.steps_done:
        parts.append(f"{training.steps_done}/{training.steps_total}" if training.steps_total else f"step {training.steps_done}")
        if training.loss is not None:
            parts.append(f"loss {training.loss:.4g}")
        remaining = training.remaining_s()
        if record.status is JobState.RUNNING and remaining is not None:
            parts.append(f"{format_elapsed(remaining)} left")
    if record.returned is not None:
        parts.append(f"returned {record.returned:.4g}" if isinstance(record.returned, float) else f"returned {record.returned}")
    return ", ".join(parts) or "-"


def shown_jobs(state: SweepState) -> dict[str, tuple[str, JobRecord | None]]:
    """Every job of the sweep as the table shows it, with the word for its status: the
    recorded ones, and those the launch in progress has yet to submit (a resubmission's
    earlier record included) as NOT SUBMITTED, with no record."""
    shown: dict[str, tuple[str, JobRecord | None]] = {
        name: (record.status.value, record) for name, record in state.jobs.items()
    }
    for name in state.unsubmitted:
        shown[name] = (NOT_SUBMITTED, None)
    return shown


def columns_and_rows(state: SweepState, now: dt.datetime | None = None) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The table's columns and rows; a Cause column (why a job ended without completing) and a
    Notes column (its error) when some job has one."""
    moment = now or dt.datetime.now()
    jobs = shown_jobs(state)
    rows: list[tuple[str, ...]] = [
        (name, word, record.job_id or "-", record.started or "-", elapsed_of(record, moment))
        if record else (name, word, "-", "-", "-")
        for name, (word, record) in jobs.items()
    ]
    columns: tuple[str, ...] = COLUMNS
    if any(
        record is not None and (record.training is not None or record.scores or record.returned is not None)
        for _, record in jobs.values()
    ):
        columns = (*columns, "Progress")
        rows = [(*row, progress_of(record) if record else "-") for row, (_, record) in zip(rows, jobs.values())]
    causes = [record.cause.value if record and record.cause else "-" for _, record in jobs.values()]
    if any(cause != "-" for cause in causes):
        columns = (*columns, "Cause")
        rows = [(*row, cause) for row, cause in zip(rows, causes)]
    errors = [record.error if record else None for _, record in jobs.values()]
    if not any(errors):
        return columns, rows
    return (*columns, "Notes"), [(*row, _shortened(error or "-")) for row, error in zip(rows, errors)]


def _shortened(text: str) -> str:
    return text if len(text) <= _NOTE_WIDTH else text[: _NOTE_WIDTH - 3] + "..."


def counts_line(state: SweepState) -> str:
    jobs = shown_jobs(state)
    counts = sorted(Counter(word for word, _ in jobs.values()).items())
    return f"{state.experiment}: {len(jobs)} jobs - " + ", ".join(f"{n} {s}" for s, n in counts)


def render_plain(state: SweepState, now: dt.datetime | None = None) -> str:
    columns, rows = columns_and_rows(state, now)
    table = [columns, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table]
    return "\n".join([counts_line(state), *lines, *notes(state)]) + "\n"


def notes(state: SweepState) -> list[str]:
    """What holds for the whole sweep: the nodes it leaves out, its early stop."""
    excluded = state.excluded_now()
    lines = [f"excluded nodes: {', '.join(f'{node} (until {state.excluded_nodes[node]})' for node in excluded)}"] if excluded else []
    if state.stopped:
        lines.append(f"stopped: {state.stopped}; after a fix, the same launch command submits what was held back")
    return lines


def render_rich(state: SweepState, now: dt.datetime | None = None) -> Table:
    # rich loads only where a table is drawn.
    from rich.table import Table

    table = Table(
        title=counts_line(state), title_justify="left", caption="\n".join(notes(state)) or None, caption_justify="left",
    )
    columns, rows = columns_and_rows(state, now)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row, style=_STYLES.get(row[1], "red" if row[1] != "-" else None))
    return table


class _Quiet:
    """Not a terminal: state changes are already logged one line each; a running job's
    progress is logged when it moved, at most every PROGRESS_EVERY_S."""

    def __init__(self, state: SweepState, clock: Callable[[], float] = time.monotonic) -> None:
        self.state, self._clock = state, clock
        self._said: dict[str, tuple[float, str]] = {}  # job -> when, what

    def refresh(self) -> None:
        now = self._clock()
        for name, record in self.state.jobs.items():
            if record.status is not JobState.RUNNING:
                continue
            progress = progress_of(record)
            when, said = self._said.get(name, (float("-inf"), "-"))
            if progress != said and now - when >= PROGRESS_EVERY_S:
                self._said[name] = (now, progress)
                log.info("%s: %s", name, progress)


class _Live:
    def __init__(self, state: SweepState, live: Live) -> None:
        self.state, self.live = state, live

    def refresh(self) -> None:
        self.live.update(render_rich(self.state), refresh=True)


@contextmanager
def live_view(state: SweepState, mode: str) -> Iterator[Union[_Quiet, _Live]]:
    """mode auto: live when stdout is a terminal; on: always; off: never."""
    if mode == "off" or (mode == "auto" and not sys.stdout.isatty()):
        yield _Quiet(state)
        return
    # rich loads only where a table is drawn.
    from rich.live import Live

    with Live(render_rich(state), auto_refresh=False, transient=False) as live:
        # Live catches print()s (it replaces sys.stdout/err) so they appear above the table;
        # logging handlers hold the streams they were given, and would write into it.
        moved = _point_log_handlers(sys.stdout, sys.stderr)
        try:
            yield _Live(state, live)
        finally:
            for handler, stream in moved:
                handler.setStream(stream)


def _point_log_handlers(stdout: TextIO, stderr: TextIO) -> list[tuple[logging.StreamHandler[TextIO], TextIO]]:
    """Point the terminal log handlers at Live's stand-ins; what each wrote to before."""
    moved = []
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            if type(handler) is logging.StreamHandler and handler.stream in (sys.__stdout__, sys.__stderr__):
                replacement = stdout if handler.stream is sys.__stdout__ else stderr
                moved.append((handler, handler.stream))
                handler.setStream(replacement)
    return moved
