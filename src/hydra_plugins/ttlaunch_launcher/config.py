"""Typed configs of ttlaunch's Hydra launcher and sweeper, registered with Hydra's ConfigStore.

Hydra imports this module at every start: it imports nothing beyond Hydra itself and the
monitor's settings (a plain dataclass, `ttlaunch.monitor.settings`).
"""

from dataclasses import dataclass
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore

from ttlaunch.monitor.settings import MonitorSettings


@dataclass
class LauncherConf:
    _target_: str = "hydra_plugins.ttlaunch_launcher.launcher.TTLaunchLauncher"
    # "local" (submitit's local executor, no SLURM needed) or "slurm".
    executor: str = "local"
    # When jobs are submitted and start (ttlaunch.submit.stagger): the app config's `stagger` node
    # (ttlaunch's `stagger` config group: start_together, fixed_delay, startup_lock); without
    # one, StartTogether.
    stagger: Optional[Dict[str, Any]] = "${oc.select:stagger,null}"  # type: ignore[assignment]
    # Never more than this many of the sweep's jobs pending or running (the cluster's
    # MaxSubmitJobsPerUser, say); the rest are submitted as slots free. None: no cap.
    max_submitted: Optional[int] = None
    # Write and print each job's batch script (SLURM) or command (local); submit nothing.
    dry_run: bool = False
    # SLURM: seconds between the warning signal (USR2) and the time limit.
    signal_delay_s: int = 120


@dataclass
class SweeperConf:
    _target_: str = "hydra_plugins.ttlaunch_launcher.sweeper.TTLaunchSweeper"


@dataclass
class MonitorConf(MonitorSettings):
    """The monitor callback, `hydra.callbacks.monitor`: its settings and defaults are
    MonitorSettings' (ttlaunch.monitor.settings)."""

    _target_: str = "ttlaunch.monitor.callback.SweepMonitor"


store = ConfigStore.instance()
store.store(group="hydra/launcher", name="ttlaunch_local", node=LauncherConf(executor="local"), provider="ttlaunch")
store.store(group="hydra/launcher", name="ttlaunch_slurm", node=LauncherConf(executor="slurm"), provider="ttlaunch")
store.store(group="hydra/sweeper", name="ttlaunch", node=SweeperConf(), provider="ttlaunch")
store.store(
    group="hydra/callbacks", name="ttlaunch_monitor", node=MonitorConf(), package="hydra.callbacks.monitor", provider="ttlaunch"
)
