"""Typed configs of ttlaunch's Hydra launcher and sweeper, registered with Hydra's ConfigStore.

Hydra imports this module at every start: it imports nothing beyond Hydra itself, the
monitor's settings (a plain dataclass, `ttlaunch.monitor.settings`), the schema of a
trainer's metrics (`ttlaunch.inputs.schema`, OmegaConf only) and the resolvers the shipped
compute presets use (`ttlaunch.inputs.resolvers`).

Every setting of hydra-submitit-launcher's SlurmQueueConf and LocalQueueConf is one of
LauncherConf's, so an app switches with `hydra/launcher=ttlaunch_slurm` and keeps its
`hydra.launcher` settings (tests/hydra_app/test_submitit_settings.py checks it field by field).
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore

import ttlaunch.inputs.resolvers  # noqa: F401  (presets chosen from any app use them)
from ttlaunch.inputs.schema import Executor, Relaunch, TrainingMetricsConfig
from ttlaunch.monitor.settings import MonitorSettings


@dataclass
class LauncherConf:
    _target_: str = "hydra_plugins.ttlaunch_launcher.launcher.TTLaunchLauncher"
    # Choosing the launcher switches the monitor on, in any app: hydra.callbacks.monitor
    # (its settings: ttlaunch.monitor.settings; `~hydra.callbacks.monitor` switches it off).
    defaults: List[Any] = field(  # Hydra's defaults list: strings and one-key dicts
        default_factory=lambda: [{"/hydra/callbacks@_global_.hydra.callbacks.monitor": "ttlaunch_monitor"}, "_self_"]
    )
    # local (submitit's local executor, no SLURM needed) or slurm.
    executor: Executor = Executor.local
    # When jobs are submitted and start (ttlaunch.job.stagger): ttlaunch's `stagger` config
    # group (start_together, fixed_delay, startup_lock): `stagger=` in ttlaunch's app,
    # `+ttlaunch/stagger=` in any other; without one, StartTogether.
    stagger: Optional[Dict[str, Any]] = "${oc.select:ttlaunch.stagger,${oc.select:stagger,null}}"  # type: ignore[assignment]
    # Never more than this many of the sweep's jobs pending or running (the cluster's
    # MaxSubmitJobsPerUser, say); the rest are submitted as slots free. None: no cap.
    max_submitted: Optional[int] = None
    # hydra-submitit-launcher's cap on running array tasks: here a cap like max_submitted
    # (which wins when both are set), counting pending jobs too.
    array_parallelism: Optional[int] = None
    # Write and print each job's batch script (SLURM) or command (local); submit nothing.
    dry_run: bool = False
    # Any other Hydra app: copy the files git tracks in the app's repository into the sweep
    # dir at launch, and have its jobs import the app from there, so an edit made while they
    # wait in the queue changes nothing (ttlaunch.submit.code_snapshot). (ttlaunch's own app
    # always runs its runs' files from the copies each submission takes.)
    snapshot: bool = False
    # What a launch does with the jobs its sweep dir already has records of. Either way a job
    # still queued or running is re-attached, never submitted twice. "rerun" (Hydra's way):
    # every job that ended runs again. "resume": completed jobs are skipped, failed ones too
    # unless resubmit_failed, and jobs never submitted or stopped by ttlaunch are submitted.
    # null: resume in ttlaunch's own app, rerun in any other. A timestamped sweep dir
    # (Hydra's default) is new at each launch; name a stable one to re-launch a sweep:
    # hydra.sweep.dir=multirun/my_sweep.
    relaunch: Optional[Relaunch] = None
    # With relaunch=resume: also submit again the jobs whose last attempt ended without
    # completing (in ttlaunch's own app, resubmit_failed=true says the same).
    resubmit_failed: bool = False
    # SLURM: seconds between the warning signal (USR2) and the time limit.
    signal_delay_s: int = 120
    # What each job asks for, named as hydra-submitit-launcher names them. Unset (null), the
    # compute preset decides (compute=<preset>; +ttlaunch/compute=<preset> in any other app); set,
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
    additional_parameters: Dict[str, Any] = field(default_factory=dict)  # OmegaConf types no 'object' value: sbatch flags' values
    setup: Optional[List[str]] = None
    # SLURM: more arguments of the srun that starts each task (["--cpu-bind=none"]).
    srun_args: Optional[List[str]] = None
    # SLURM: false starts the job's one task in the batch script itself, without srun.
    use_srun: bool = True
    # Each job's stderr into its stdout file (the monitor then reads both there).
    stderr_to_stdout: bool = False
    # Where hydra-submitit-launcher puts submitit's files (`${hydra.sweep.dir}/.submitit/%j`).
    # ttlaunch keeps each job's in `<its dir>/submitit/` (its records and re-attaching read
    # them there); set, this path gets a link to them per job id (%j), so scripts that read
    # logs where they were still find them.
    submitit_folder: Optional[str] = None
    # The sweep's name (null: hydra.job.name): its name in the event log and summary.md, and
    # the name of a job when nothing is swept. Jobs are named after their swept overrides.
    name: Optional[str] = None
    # A trainer's metrics in any app, without changing it: a regex on each line of the job's
    # stdout and stderr (named groups: step, loss, lr, tokens_per_s, peak_memory_gb,
    # steps_total), or a JSONL file relative to the job's output dir. The live view, the
    # results table and the loss curves use them, as payload.metrics for a command.
    metrics: TrainingMetricsConfig = field(default_factory=TrainingMetricsConfig)
    # Timeouts a job is requeued for. Set, it wins over the requeue choice's
    # requeue.max_num_timeout (requeue=on: 3); unset in an app without +ttlaunch/requeue=on: 0, as
    # with hydra-submitit-launcher (preemptions are requeued all the same on SLURM).
    max_num_timeout: Optional[int] = None


@dataclass
class SweeperConf:
    _target_: str = "hydra_plugins.ttlaunch_launcher.sweeper.TTLaunchSweeper"


@dataclass
class MonitorConf(MonitorSettings):
    """The monitor callback, `hydra.callbacks.monitor`: its settings and defaults are
    MonitorSettings' (ttlaunch.monitor.settings)."""

    _target_: str = "ttlaunch.monitor.callback.MonitorCallback"


store = ConfigStore.instance()
store.store(group="hydra/launcher", name="ttlaunch_local", node=LauncherConf(executor=Executor.local), provider="ttlaunch")
store.store(group="hydra/launcher", name="ttlaunch_slurm", node=LauncherConf(executor=Executor.slurm), provider="ttlaunch")
store.store(group="hydra/sweeper", name="ttlaunch", node=SweeperConf(), provider="ttlaunch")
store.store(
    group="hydra/callbacks", name="ttlaunch_monitor", node=MonitorConf(), package="hydra.callbacks.monitor", provider="ttlaunch"
)
