"""Typed configs of ttlaunch's Hydra launcher and sweeper, registered with Hydra's ConfigStore.

Hydra imports this module at every start: it imports nothing beyond Hydra itself, the
monitor's settings (a plain dataclass, `ttlaunch.monitor.settings`) and the resolvers the
shipped compute presets use (`ttlaunch.inputs.resolvers`, OmegaConf only).
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore

import ttlaunch.inputs.resolvers  # noqa: F401  (presets chosen from any app use them)
from ttlaunch.monitor.settings import MonitorSettings


@dataclass
class LauncherConf:
    _target_: str = "hydra_plugins.ttlaunch_launcher.launcher.TTLaunchLauncher"
    # Choosing the launcher switches the monitor on, in any app: hydra.callbacks.monitor
    # (its settings: ttlaunch.monitor.settings; `~hydra.callbacks.monitor` switches it off).
    defaults: List[Any] = field(
        default_factory=lambda: [{"/hydra/callbacks@_global_.hydra.callbacks.monitor": "ttlaunch_monitor"}, "_self_"]
    )
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
    # What a launch does with the jobs its sweep dir already has records of. Either way a job
    # still queued or running is re-attached, never submitted twice. "rerun" (Hydra's way):
    # every job that ended runs again. "resume": completed jobs are skipped, failed ones too
    # unless resubmit_failed, and jobs never submitted or stopped by ttlaunch are submitted.
    # null: resume in ttlaunch's own app, rerun in any other. A timestamped sweep dir
    # (Hydra's default) is new at each launch; name a stable one to re-launch a sweep:
    # hydra.sweep.dir=multirun/my_sweep.
    relaunch: Optional[str] = None
    # With relaunch=resume: also submit again the jobs whose last attempt ended without
    # completing (in ttlaunch's own app, resubmit_failed=true says the same).
    resubmit_failed: bool = False
    # SLURM: seconds between the warning signal (USR2) and the time limit.
    signal_delay_s: int = 120
    # What each job asks for, named as hydra-submitit-launcher names them. Unset (null), the
    # compute preset decides (compute=<preset>; +compute=<preset> in any other app); set,
    # they win over it. ttlaunch.inputs.schema.with_launcher_fields.
    timeout_min: Optional[int] = None
    cpus_per_task: Optional[int] = None
    gpus_per_node: Optional[int] = None
    tasks_per_node: Optional[int] = None
    mem_gb: Optional[float] = None
    nodes: Optional[int] = None
    partition: Optional[str] = None
    qos: Optional[str] = None
    account: Optional[str] = None
    constraint: Optional[str] = None
    gres: Optional[str] = None
    comment: Optional[str] = None
    exclude: Optional[str] = None
    cpus_per_gpu: Optional[int] = None
    gpus_per_task: Optional[int] = None
    mem_per_gpu: Optional[str] = None
    mem_per_cpu: Optional[str] = None
    additional_parameters: Dict[str, Any] = field(default_factory=dict)
    setup: Optional[List[str]] = None
    # Timeouts a job is requeued for. Set, it wins over the requeue choice's
    # requeue.max_num_timeout (requeue=on: 3); unset in an app without +requeue=on: 0, as
    # with hydra-submitit-launcher (preemptions are requeued all the same on SLURM).
    max_num_timeout: Optional[int] = None


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
