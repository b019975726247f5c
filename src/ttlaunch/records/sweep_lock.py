"""One launcher or monitor per sweep at a time.

The lock is an OS file lock (filelock's fcntl lock) on `<sweep>/.monitor.lock`: the kernel
releases it when its holder dies, even by `kill -9`, so a crashed launcher never blocks the
next one. Who holds it is written beside it, for the message a second launch gets.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from types import TracebackType

from ttlaunch.base.errors import SweepBusy, UnwritableSweep
from ttlaunch.base.times import timestamp

LOCK_NAME = ".monitor.lock"
HOLDER_NAME = ".monitor.holder"


class SweepLock:
    def __init__(self, sweep_dir: Path) -> None:
        # filelock loads only where a lock is taken.
        from filelock import FileLock

        self.sweep_dir = sweep_dir
        self._lock = FileLock(str(sweep_dir / LOCK_NAME), timeout=0)

    def acquire(self, wait_s: float = 0.0) -> None:
        """Take the lock, waiting up to `wait_s` for its holder to let go; SweepBusy if it does not."""
        # filelock loads only where a lock is taken.
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=wait_s, poll_interval=1.0)
        except Timeout:
            raise SweepBusy(self.sweep_dir, holder_of(self.sweep_dir / HOLDER_NAME)) from None
        except OSError as err:  # read-only, full, no permission: nothing can be recorded there
            raise UnwritableSweep(err.filename or self.sweep_dir, err) from None
        try:
            (self.sweep_dir / HOLDER_NAME).write_text(
                f"pid {os.getpid()} on {socket.gethostname()} since {timestamp()}\n", encoding="utf-8"
            )
        except OSError as err:
            self._lock.release()
            raise UnwritableSweep(err.filename or self.sweep_dir, err) from None

    def release(self) -> None:
        if self._lock.is_locked:
            (self.sweep_dir / HOLDER_NAME).unlink(missing_ok=True)
            self._lock.release()

    def __enter__(self) -> "SweepLock":
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.release()


def holder_of(path: Path) -> str:
    """Who holds the lock, as its holder wrote it; said plainly when that record is missing
    or damaged (the lock itself, not this file, is what keeps a second launch out)."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace").strip()
    except FileNotFoundError:
        return "another process"
    except OSError as err:
        return f"another process; its record {path} cannot be read: {err.strerror}"
    if re.fullmatch(r"pid \d+ on \S+ since [\d:\- ]+", text) is None:
        return f"another process; its record {path} is damaged"
    return text
