"""Stagger hooks: when the jobs of a sweep are submitted and may start their payloads.

What simultaneous starts race on that ttlaunch knows of (the HuggingFace datasets cache of a
torchtune run, `payload.prepare` commands) is prepared once per sweep whatever the hook
(ttlaunch.job.preparation): the first job prepares, the others wait only while it does. The
hook decides the rest. It is chosen with the `stagger` config group (`stagger=start_together`,
`fixed_delay`, `startup_lock`, or a `stagger/<name>.yaml` of yours naming a `_target_`) and
has two methods and one attribute:

* `before_submit(index, total)`, called in the launching process before each submission;
* `startup_window(sweep_dir)`, a context manager entered in each job, after the sweep's
  preparation, around its setup commands and the start of its payload;
* `concurrent_submissions`: how many submissions may be in flight together.

`StartTogether` (the default) submits everything at once and lets every job start as soon as
the scheduler runs it. `FixedDelay` spaces submissions `seconds` apart, as hand-written
sbatch loops do: for a payload that makes something of its own at start that ttlaunch does
not know of. `StartupLock` submits at once and lets one job at a time through its start-up
window (setup, payload start, then `window_s`), with a file lock in the sweep dir: for
payloads whose first seconds race on something ttlaunch does not prepare.
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
class StartTogether:
    """Submit everything at once; every job starts when the scheduler runs it."""

    # sbatch calls in flight at once: the scheduler, not this process, is the limit.
    concurrent_submissions: int = 8

    def before_submit(self, index: int, total: int) -> None:
        return None

    def startup_window(self, sweep_dir: Path) -> ContextManager[None]:
        return contextlib.nullcontext()


def hook_or_default(hook: StaggerHook | None) -> StaggerHook:
    """The configured hook; StartTogether for an app config without a `stagger` node."""
    return hook if hook is not None else StartTogether()


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
        # filelock loads only where a lock is taken.
        from filelock import FileLock

        with FileLock(str(sweep_dir / STARTUP_LOCK_NAME)):
            yield
            self.sleep(self.window_s)  # the payload is starting: keep the next job out a while
