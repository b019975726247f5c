"""Reading what jobs write while they write it: the whole lines added since the last read."""

from __future__ import annotations

from pathlib import Path

# Read at most this much of one file at a time: a large backlog is caught up over a few polls.
MAX_READ_BYTES = 8 * 1024 * 1024


def new_lines(path: Path, start: int) -> tuple[list[str], int]:
    """The whole lines written to `path` since byte `start`, and the offset after them."""
    try:
        with path.open("rb") as stream:
            stream.seek(start)
            data = stream.read(MAX_READ_BYTES)
    except OSError:  # not written yet
        return [], start
    # A line still being written waits for the next poll; a progress bar redrawn with \r has
    # written each redraw whole.
    complete = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
    return data[:complete].decode("utf-8", errors="replace").splitlines(), start + complete
