"""One figure read from someone else's output (SLURM's commands, nvidia-smi, files a job
wrote): a count, a number, a duration, a size, a time, an exit code.

Each reader returns None when the text is not such a figure (empty, `Unknown`, `INVALID`,
negative, not finite, garbage): a damaged figure is an unknown figure, never an exception.
A parser that cannot read an output at all raises UnreadableOutput, its one typed error.
"""

from __future__ import annotations

import math
import re

from ttlaunch.base.times import parse_timestamp

# A plain decimal: digits, an optional fraction and exponent; no sign (figures are never negative).
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_NUMBER_RE = re.compile(rf"\s*({_NUMBER})\s*", re.ASCII)
# SLURM durations: [D-][HH:]MM:SS[.mmm]; more digits than SLURM ever prints is garbage.
_DURATION_RE = re.compile(r"(?:(\d{1,6})-)?(?:(\d{1,9}):)?(\d{1,9}):(\d{1,9}(?:\.\d{1,9})?)", re.ASCII)
_SIZE_RE = re.compile(rf"\s*({_NUMBER})\s*([KMGTP]?)(?:i?B)?\s*", re.IGNORECASE | re.ASCII)
_SIZE_UNITS_MB = {"": 1.0, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2, "P": 1024.0**3}
_EXIT_CODE_RE = re.compile(r"\d{1,9}:\d{1,9}", re.ASCII)


# What an unknown figure looks like wherever figures are shown to the user.
UNKNOWN = "unknown"


class UnreadableOutput(ValueError):
    """An output none of which is in the form asked for (another format, another version)."""


def number(text: str | None) -> float | None:
    """A finite, non-negative decimal ("50.00", "1e3"); None otherwise ("nan", "-5", "1.2.3")."""
    match = _NUMBER_RE.fullmatch(text or "")
    if match is None:
        return None
    value = float(match.group(1))
    return value if math.isfinite(value) else None


def count(text: str | None, maximum: int) -> int | None:
    """A whole number from 0 to `maximum` (the width of the scheduler's own field)."""
    stripped = (text or "").strip()
    if not stripped.isascii() or not stripped.isdigit():
        return None
    value = int(stripped)
    return value if value <= maximum else None


def duration(text: str | None) -> float | None:
    """SLURM's [D-][HH:]MM:SS[.mmm] in seconds; None for UNLIMITED, INVALID, empty, garbage."""
    match = _DURATION_RE.fullmatch((text or "").strip())
    if match is None:
        return None
    days, hours, minutes, secs = match.groups()
    return int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60 + float(secs)


def duration_s(text: str | None) -> int | None:
    """SLURM's [D-][HH:]MM:SS[.mmm] in whole seconds; None as for duration."""
    seconds = duration(text)
    return None if seconds is None else int(seconds)


def clock(total_s: int) -> str:
    """Seconds as HH:MM:SS (hours may exceed 24), the way seff prints wall times."""
    hours, rest = divmod(total_s, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def size_mb(text: str | None) -> float | None:
    """'214.49 MB', '219636K', '500M', '2G', '0' -> megabytes (no unit: megabytes)."""
    match = _SIZE_RE.fullmatch(text or "")
    if match is None:
        return None
    value = float(match.group(1)) * _SIZE_UNITS_MB[match.group(2).upper()]
    return value if math.isfinite(value) else None


def scheduler_time(text: str | None) -> str | None:
    """sacct's 2026-11-22T23:31:38 as 2026-11-22 23:31:38; None for Unknown, None, garbage."""
    candidate = (text or "").strip().replace("T", " ", 1)
    return candidate if parse_timestamp(candidate) is not None else None


def exit_code(text: str | None) -> str | None:
    """SLURM's `<code>:<signal>`; None when it is not one."""
    stripped = (text or "").strip()
    return stripped if _EXIT_CODE_RE.fullmatch(stripped) else None


def shown(value: object, spec: str, unit: str = "") -> str:
    """A figure formatted for the user (`spec` as in format()); `unknown` for anything that
    is not a finite number (None, or whatever a hand-edited jobs.json holds)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return UNKNOWN
    return f"{value:{spec}}{unit}"
