"""One launcher or monitor per sweep at a time.

The lock is an OS file lock (filelock's fcntl lock) on `<sweep>/.monitor.lock`: the kernel
releases it when its holder dies, even by `kill -9`, so a crashed launcher never blocks the
next one. Who holds it is written beside it, for the message a second launch gets.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import TracebackType

from ttlaunch.errors import SweepBusy
from ttlaunch.records import timestamp

LOCK_NAME = ".monitor.lock"
HOLDER_NAME = ".monitor.holder"


class SweepLock:
    def __init__(self, sweep_dir: Path) -> None:
        from filelock import FileLock

        self.sweep_dir = sweep_dir
        self._lock = FileLock(str(sweep_dir / LOCK_NAME), timeout=0)

    def acquire(self) -> None:
        from filelock import Timeout

        try:
            self._lock.acquire()
        except Timeout:
            holder_path = self.sweep_dir / HOLDER_NAME
            holder = holder_path.read_text(encoding="utf-8").strip() if holder_path.is_file() else "another process"
            raise SweepBusy(self.sweep_dir, holder) from None
        (self.sweep_dir / HOLDER_NAME).write_text(
            f"pid {os.getpid()} on {socket.gethostname()} since {timestamp()}\n", encoding="utf-8"
        )

    def release(self) -> None:
        if self._lock.is_locked:
            (self.sweep_dir / HOLDER_NAME).unlink(missing_ok=True)
            self._lock.release()

    def __enter__(self) -> "SweepLock":
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.release()
