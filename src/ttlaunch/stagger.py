"""Stagger hooks: keep simultaneous job starts from racing on the HuggingFace datasets cache.

A hook is configured under `hydra.launcher.stagger` with a `_target_` and has two methods:

* `before_submit(index, total)`, called in the launching process before each submission;
* `startup_window(sweep_dir)`, a context manager entered in each job around its setup
  commands and the start of its payload (exited once the payload has started).

`FixedDelay` (the default) spaces submissions out; `StartupLock` submits everything at once
(`concurrent_submissions` at a time) and serialises only the jobs' start-up windows, with a
file lock on the shared filesystem. A hook's `concurrent_submissions` (default 1) says how
many submissions may be in flight together.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Iterator, Protocol

STARTUP_LOCK_NAME = ".startup.lock"


class StaggerHook(Protocol):
    def before_submit(self, index: int, total: int) -> None:
        """In the launching process, before submission `index` (0-based) of `total`."""

    def startup_window(self, sweep_dir: Path) -> ContextManager[None]:
        """In the job, around its setup commands and the start of its payload."""


@dataclass
class FixedDelay:
    """Wait `seconds` between submissions; none before the first or after the last."""

    seconds: float = 5.0
    sleep: Callable[[float], None] = time.sleep
    concurrent_submissions = 1

    def before_submit(self, index: int, total: int) -> None:
        if index > 0 and self.seconds > 0:
            self.sleep(self.seconds)

    def startup_window(self, sweep_dir: Path) -> ContextManager[None]:
        return contextlib.nullcontext()


@dataclass
class StartupLock:
    """Submit at once; in the jobs, one at a time: setup, payload start, then `window_s`.

    The lock file lives in the sweep dir, which every job of the sweep shares.
    """

    window_s: float = 5.0
    # sbatch calls in flight at once: the scheduler, not this process, is the limit.
    concurrent_submissions: int = 8
    sleep: Callable[[float], None] = time.sleep

    def before_submit(self, index: int, total: int) -> None:
        return None

    @contextlib.contextmanager
    def startup_window(self, sweep_dir: Path) -> Iterator[None]:
        from filelock import FileLock

        with FileLock(str(sweep_dir / STARTUP_LOCK_NAME)):
            yield
            self.sleep(self.window_s)  # the payload is starting: keep the next job out a while
