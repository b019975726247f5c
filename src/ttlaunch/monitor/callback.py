"""The monitor as a Hydra callback, `hydra.callbacks.monitor`: the launcher hands it the sweep
it submitted, and it follows that sweep to its end (or detaches)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from hydra.experimental.callback import Callback

from ttlaunch.monitor.settings import MonitorSettings

if TYPE_CHECKING:  # Hydra instantiates the callback in every job too: the monitor loads where it monitors
    from ttlaunch.monitor.sweep_monitor import Monitor


class SweepWatcher(Protocol):
    """A Hydra callback that monitors the sweeps the launcher hands it: MonitorCallback, or
    a user's own in its place."""

    def settings(self) -> MonitorSettings: ...

    def watch(self, monitor: Monitor, hand_over: Callable[[], str] | None) -> None: ...


def reattach_hint(sweep_dir: Path) -> str:
    return f"python -m ttlaunch.status {sweep_dir} --follow"


@dataclass
class MonitorCallback(MonitorSettings, Callback):
    """The Hydra callback that monitors a sweep (configured under `hydra.callbacks.monitor`).

    Hydra instantiates callbacks in the launching process and again in every job; this one
    does nothing but hold its settings (MonitorSettings, whose fields it has) until the
    launcher hands it a sweep (`watch`).
    Switch it off with `~hydra.callbacks.monitor`: jobs are then submitted and recorded,
    and `python -m ttlaunch.status <sweep dir> --follow` can monitor them later. Its settings
    are checked with the launch's other inputs (ttlaunch.submit.own_app_launch.check_settings).
    """

    def settings(self) -> MonitorSettings:
        return MonitorSettings(**{field.name: getattr(self, field.name) for field in fields(MonitorSettings)})

    def watch(self, monitor: Monitor, hand_over: Callable[[], str] | None) -> None:
        """Monitor to the end, or (detach) hand the sweep to its monitor job (`hand_over`
        submits it and says what to tell the user) and return at once."""
        if self.detach:
            if hand_over is not None:
                message = hand_over()
            else:
                message = f"detached: jobs keep running; follow them with `{reattach_hint(monitor.ledger.sweep_dir)}`"
            print(f"ttlaunch: {message}", file=sys.stderr, flush=True)
            return
        try:
            monitor.follow()
        except KeyboardInterrupt:
            if monitor.backend.jobs_outlive_launch:
                print(
                    f"ttlaunch: monitoring stopped; {monitor.backend.runner} jobs keep running. Re-attach with "
                    f"`{reattach_hint(monitor.ledger.sweep_dir)}` or the same launch command.",
                    file=sys.stderr, flush=True,
                )
            raise


def find_monitor(callbacks: object) -> SweepWatcher | None:
    """The first configured Hydra callback that monitors sweeps (`settings` and `watch`);
    None when monitoring is switched off."""
    for callback in getattr(callbacks, "callbacks", None) or []:
        if hasattr(callback, "settings") and hasattr(callback, "watch"):
            watcher: SweepWatcher = callback
            return watcher
    return None
