"""The sweep's event log (`run-torchtune.log`): append-only entries, each a timestamped action
line and its `Key: value` lines.

    [YYYY-MM-DD HH:MM:SS] ACTION: one-line description
    Key: value

One blank line ends an entry.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ttlaunch.base.times import timestamp

EVENT_LOG_NAME = "run-torchtune.log"


def format_entry(moment: str, action: str, description: str, fields: Iterable[tuple[str, object]]) -> str:
    lines = [f"[{moment}] {action}: {description}"]
    for key, value in fields:
        text = str(value).replace("\n", " ")  # one line per key keeps the log parseable
        lines.append(f"{key}: {text}")
    return "\n".join(lines) + "\n\n"


# An entry to write: kind, description, fields.
Entry = tuple[str, str, Sequence[tuple[str, object]]]


@dataclass(frozen=True)
class Event:
    """One entry of the event log, read back."""

    moment: str
    action: str
    description: str
    fields: dict[str, str]


_ENTRY_HEAD = re.compile(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\] ([A-Z_]+): (.*)")


def read_events(text: str) -> list[Event]:
    """The entries of an event log's text, oldest first; a block that is not an entry (a
    line cut short, an edit) is skipped."""
    entries = []
    for block in text.split("\n\n"):
        lines = block.strip("\n").split("\n")
        head = _ENTRY_HEAD.fullmatch(lines[0])
        if head is None:
            continue
        pairs = [line.split(": ", 1) for line in lines[1:]]
        if any(len(pair) != 2 for pair in pairs):
            continue
        entries.append(Event(head.group(1), head.group(2), head.group(3), {key: value for key, value in pairs}))
    return entries


class EventLog:
    def __init__(self, path: Path, now: Callable[[], str] = timestamp, copy: Path | None = None) -> None:
        self.path = path
        self._now = now
        # Where the same entries also go (the experiment's logs/run-torchtune.log); the sweep's
        # own log stays the one ttlaunch reads.
        self.copy = copy

    def write(self, action: str, description: str, *fields: tuple[str, object]) -> None:
        self.write_all([(action, description, fields)])

    def write_all(self, entries: Sequence[Entry]) -> None:
        """Append entries together: all of them, or (the disk full, say) none, never a part."""
        moment = self._now()
        text = "".join(format_entry(moment, action, description, fields) for action, description, fields in entries)
        _append(self.path, text)
        if self.copy is not None:
            self.copy.parent.mkdir(parents=True, exist_ok=True)
            _append(self.copy, text)


def _append(path: Path, text: str) -> None:
    data = memoryview(text.encode("utf-8"))
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.lseek(descriptor, 0, os.SEEK_END)
        try:
            while data:
                data = data[os.write(descriptor, data):]
        except OSError:
            os.ftruncate(descriptor, start)  # needs no space: what was written in part goes
            raise
    finally:
        os.close(descriptor)
