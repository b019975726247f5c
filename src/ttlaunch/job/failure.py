"""Why a job failed, from the end of its stderr: the payload's exit code and its last error
line (its exception, not the wrapper's traceback that follows it).

The wrapper marks the end of the payload's output with PAYLOAD_EXIT before it raises; the
payload's part is what comes before that mark. Pure: text in, a one-line reason out.
"""

from __future__ import annotations

import re
from pathlib import Path

# Printed by the wrapper (ttlaunch.job.task) to the job's stderr when the payload exits non-zero.
PAYLOAD_EXIT = "ttlaunch: the payload exited with code"
_MARK = re.compile(rf"^{re.escape(PAYLOAD_EXIT)} (-?\d+)$", re.M)
# A line that says what went wrong: an exception (ValueError: ..., torch.OutOfMemoryError: ...),
# or a message that says error, failure or a kill.
_ERROR_LINE = re.compile(r"^\s*[\w.]*(Error|Exception|Interrupt)\b|error|fail|killed|out of memory", re.I)
# What SLURM itself writes into a job's stderr (a memory kill, a cancel and why).
_SCHEDULER_LINES = ("slurmstepd:", "srun:")
_TAIL_BYTES = 65536
_MAX_LINE = 300


def payload_exit_code(stderr_tail: str) -> int | None:
    """The payload's exit code, when the wrapper marked one."""
    marks = list(_MARK.finditer(stderr_tail))
    return int(marks[-1].group(1)) if marks else None


def without_wrapper(stderr_tail: str) -> str:
    """What the payload and the scheduler wrote, without the wrapper's own traceback after its
    mark (which would read as the payload's exception)."""
    marks = list(_MARK.finditer(stderr_tail))
    if not marks:
        return stderr_tail
    after = stderr_tail[marks[-1].end():].splitlines()
    return "\n".join([stderr_tail[: marks[-1].start()].rstrip("\n"), *(line for line in after if line.startswith(_SCHEDULER_LINES))])


def failure_reason(stderr_tail: str) -> str | None:
    """`payload exited with code 3: ValueError: lr must be positive`; the wrapper's own error
    line when the payload never exited (it failed before or around it); None when the text
    says nothing."""
    marks = list(_MARK.finditer(stderr_tail))
    if marks:
        before = stderr_tail[: marks[-1].start()]
        line = _last_error_line(before)
        prefix = f"payload exited with code {marks[-1].group(1)}"
        return f"{prefix}: {line}" if line else prefix
    return _last_error_line(stderr_tail)


def _last_error_line(text: str) -> str | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if _ERROR_LINE.search(line) and not line.startswith(("File \"", "Traceback (most recent call last)")):
            return line[:_MAX_LINE]
    return lines[-1][:_MAX_LINE] if lines else None


def read_tail(stderr: Path) -> str:
    """The end of a job's stderr file ("" when it cannot be read)."""
    try:
        with stderr.open("rb") as stream:
            stream.seek(max(0, stream.seek(0, 2) - _TAIL_BYTES))
            return stream.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
