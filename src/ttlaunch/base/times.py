"""Times as ttlaunch writes and reads them: in the event log, jobs.json and tables (the
format sacct prints too), and elapsed times for people."""

from __future__ import annotations

import datetime as dt

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
