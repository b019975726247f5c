"""The sweep's event log (`run-torchtune.log`): append-only entries in the seeds' format.

    [YYYY-MM-DD HH:MM:SS] ACTION: one-line description
    Key: value

One blank line ends an entry.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable, Iterable

EVENT_LOG_NAME = "run-torchtune.log"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def timestamp(moment: dt.datetime | None = None) -> str:
    return (moment or dt.datetime.now()).strftime(TIME_FORMAT)


def parse_timestamp(text: str | None) -> dt.datetime | None:
    """A time written by `timestamp` (or sacct, same format); None when absent or not one."""
    if not text:
        return None
    try:
        return dt.datetime.strptime(text, TIME_FORMAT)
    except ValueError:
        return None


def format_elapsed(seconds: float) -> str:
    """8m 2s, 1h 3m 0s, 42s."""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def format_entry(moment: str, action: str, description: str, fields: Iterable[tuple[str, object]]) -> str:
    lines = [f"[{moment}] {action}: {description}"]
    for key, value in fields:
        text = str(value).replace("\n", " ")  # one line per key keeps the log parseable
        lines.append(f"{key}: {text}")
    return "\n".join(lines) + "\n\n"


class EventLog:
    def __init__(self, path: Path, now: Callable[[], str] = timestamp) -> None:
        self.path = path
        self._now = now

    def write(self, action: str, description: str, *fields: tuple[str, object]) -> None:
        entry = format_entry(self._now(), action, description, fields)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(entry)
