"""Stagger hooks: called by the launcher before each submission.

Simultaneous job starts race on the HuggingFace datasets cache, so by default
submissions are spaced out. A hook is any object with `before_submit(index, total)`,
configured under `hydra.launcher.stagger` with a `_target_`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol


class StaggerHook(Protocol):
    def before_submit(self, index: int, total: int) -> None:
        """Called in the launching process before submission `index` (0-based) of `total`."""


@dataclass
class FixedDelay:
    """Wait `seconds` between submissions; none before the first or after the last."""

    seconds: float = 5.0
    sleep: Callable[[float], None] = time.sleep

    def before_submit(self, index: int, total: int) -> None:
        if index > 0 and self.seconds > 0:
            self.sleep(self.seconds)
