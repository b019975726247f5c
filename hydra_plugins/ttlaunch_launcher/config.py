"""Typed configs of ttlaunch's Hydra launcher and sweeper, registered with Hydra's ConfigStore.

Hydra imports this module at every start: it imports nothing beyond Hydra itself.
"""

from dataclasses import dataclass, field
from typing import Any, Dict

from hydra.core.config_store import ConfigStore


@dataclass
class LauncherConf:
    _target_: str = "hydra_plugins.ttlaunch_launcher.launcher.TTLaunchLauncher"
    # "local" (submitit's local executor, no SLURM needed) or "slurm".
    executor: str = "local"
    # Called before each submission; any object with before_submit(index, total).
    stagger: Dict[str, Any] = field(
        default_factory=lambda: {"_target_": "ttlaunch.stagger.FixedDelay", "seconds": 5.0}
    )
    # Seconds between two looks at the jobs' states while waiting for them.
    poll_interval_s: float = 60.0
    # SLURM: seconds between the warning signal (USR2) and the time limit.
    signal_delay_s: int = 120


@dataclass
class SweeperConf:
    _target_: str = "hydra_plugins.ttlaunch_launcher.sweeper.TTLaunchSweeper"


store = ConfigStore.instance()
store.store(group="hydra/launcher", name="ttlaunch_local", node=LauncherConf(executor="local", poll_interval_s=2.0), provider="ttlaunch")
store.store(group="hydra/launcher", name="ttlaunch_slurm", node=LauncherConf(executor="slurm"), provider="ttlaunch")
store.store(group="hydra/sweeper", name="ttlaunch", node=SweeperConf(), provider="ttlaunch")
