"""Typed schemas of ttlaunch's config groups.

The YAML in `configs/` is merged onto these dataclasses, so a misspelt key or a
value of the wrong type in a preset is an error naming the group and the key,
not a setting silently ignored.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import PurePath
from typing import Any, Dict, List, Optional, Sequence, Type, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ttlaunch.base.errors import InputError
from ttlaunch.inputs.failure_causes import FailureCause
from ttlaunch.inputs.payload_kinds import PayloadKind

T = TypeVar("T")

# ttlaunch's config groups that any Hydra app may choose, under this prefix
# (`+ttlaunch/compute=killarney/h100_1x`): how a sweep is launched, not what a job computes.
APP_GROUPS_PREFIX = "ttlaunch"
APP_GROUPS = ("compute", "requeue", "stagger")


class Executor(str, Enum):
    """Where a sweep's jobs run (hydra.launcher.executor; jobs.json's `executor`). Its members
    are named by their words: OmegaConf reads an Enum setting by member name, and writes it so."""

    local = "local"  # submitit's local executor: this machine, no SLURM
    slurm = "slurm"


class Relaunch(str, Enum):
    """What a launch does with the jobs its sweep dir has records of (hydra.launcher.relaunch),
    named by their words as Executor's are."""

    rerun = "rerun"  # every job that ended runs again (Hydra's way)
    resume = "resume"  # completed jobs are skipped, failed ones too unless resubmit_failed


@dataclass
class ComputeConfig:
    """A compute preset (`compute=<cluster>/<preset>`): what one job asks the scheduler for."""

    cluster: str = "local"
    partition: Optional[str] = None
    qos: Optional[str] = None
    account: Optional[str] = None  # usually left to user.slurm.account
    # GPUs each node of a job gets: the one statement of the GPU count. Everything follows
    # from it: the sbatch request, and how many processes train (torchtune's distributed
    # recipe on more than one). null: as many as `gres` names (0 without).
    gpus_per_node: Optional[int] = None
    gpu_type: Optional[str] = None  # e.g. h100: asked for as --gres=gpu:h100:<gpus_per_node>
    # How this cluster wants GPUs asked for: gres (--gres=gpu[:type]:N) or gpus_per_node
    # (--gpus-per-node=[type:]N).
    gpu_request: str = "gres"
    gres: Optional[str] = None  # other generic resources; a GPU entry here must agree with gpus_per_node
    constraint: Optional[str] = None
    nodes: int = 1
    tasks_per_node: int = 1
    cpus_per_task: Optional[int] = None
    mem_gb: Optional[float] = None
    timeout_min: int = 60
    # Root of the sweep dirs on this cluster (paths.work_root follows it).
    work_root: Optional[str] = None
    # sbatch flags of the preset that have no field above, e.g. {exclusive: true}.
    additional_parameters: Dict[str, Any] = field(default_factory=dict)  # OmegaConf types no 'object' value: sbatch flags' values
    # Shell lines run in the batch script before the job starts (module load ...).
    setup: List[str] = field(default_factory=list)

    @property
    def gres_gpus(self) -> Optional[int]:
        """How many GPUs `gres` names (gpu:h100:2 -> 2); None when it names none."""
        match = _GPU_GRES.search(self.gres or "")
        return int(match.group(1)) if match else None

    @property
    def gpus(self) -> int:
        """GPUs each node gets."""
        if self.gpus_per_node is not None:
            return self.gpus_per_node
        return self.gres_gpus or 0


# A GPU entry of a gres string: gpu:2, gpu:h100:2 (beside others: gpu:h100:2,nvme:1).
_GPU_GRES = re.compile(r"(?:^|,)gpu(?::[^:,]+)?:(\d+)(?=,|$)")
_GPU_REQUESTS = ("gres", "gpus_per_node")


@dataclass
class RequeueConfig:
    """`requeue=on|off`: whether a preempted or timed-out job goes back into the queue."""

    enabled: bool = False
    # How many timeouts a job is requeued for (0 disables requeue on timeout); preemptions
    # are always requeued.
    max_num_timeout: int = 0
    # Seconds the payload gets to save and exit after SIGTERM when its job is requeued
    # (then SIGKILL); below hydra.launcher.signal_delay_s, the warning's lead time.
    grace_s: int = 60


@dataclass
class UserSlurmConfig:
    account: Optional[str] = None
    # Extra sbatch flags of this user, merged over the preset's (user wins, never dropped).
    additional_parameters: Dict[str, Any] = field(default_factory=dict)  # OmegaConf types no 'object' value: sbatch flags' values


@dataclass
class UserConfig:
    slurm: UserSlurmConfig = field(default_factory=UserSlurmConfig)


@dataclass
class TrainingMetricsConfig:
    """Where a kind=command trainer's metrics are, for its progress and the sweep's results
    (torchtune's are found without this: its metric log, its stdout, its progress bar)."""

    # A regex searched in each line of the job's stdout: a named group `step`, and groups
    # named after the metrics (loss, lr, tokens_per_s, peak_memory_gb, steps_total).
    pattern: Optional[str] = None
    # A JSONL file, relative to the run's output dir: one object per step, {"step": N, "loss": ...}.
    jsonl: Optional[str] = None


def check_metrics(metrics: TrainingMetricsConfig, source: str, key: str, owner: str) -> None:
    """A metrics regex compiles and has a `step` group; a JSONL path stays inside the
    `owner`'s output dir. An InputError naming `key` otherwise."""
    if metrics.pattern is not None:
        try:
            pattern = re.compile(metrics.pattern)
        except re.error as err:
            raise InputError(source, f"{key}.pattern", f"not a regular expression: {err}") from None
        if "step" not in pattern.groupindex:
            raise InputError(source, f"{key}.pattern", "needs a named group step, e.g. (?P<step>\\d+)")
    jsonl = metrics.jsonl
    if jsonl is not None and (PurePath(jsonl).is_absolute() or ".." in PurePath(jsonl).parts or not jsonl.strip()):
        raise InputError(source, f"{key}.jsonl", f"{jsonl!r}: expected a path inside the {owner} output dir")


@dataclass
class PayloadConfig:
    """What a job runs (`payload=<name>`).

    kind=torchtune: `tune run [--nproc_per_node N] <recipe> --config <config> key=value ...`,
    where the config is `<experiment dir>/<run>/<scaffold_config>` when the experiment is
    scaffolded, else `base_config` (on several GPUs, a built-in single-device config's
    multi-device counterpart) plus the run's parameters through `key_map`.
    kind=command: `command`, an argv list whose items may use {run_name}, {output_dir},
    {job_dir}, {experiment} and the run's parameters by name.
    """

    kind: PayloadKind = PayloadKind.torchtune
    # null: chosen by the GPU count, lora_finetune_single_device on one device (or the CPU),
    # lora_finetune_distributed on more. A single-device recipe named here on several GPUs
    # is an error.
    recipe: Optional[str] = None
    base_config: Optional[str] = None
    scaffold_config: str = "finetune.yaml"
    # Summary parameter name -> torchtune config key.
    key_map: Dict[str, str] = field(default_factory=dict)
    # key=value overrides given to every run, after the run's parameters.
    overrides: List[str] = field(default_factory=list)
    # Appended last to the payload's argv: what a rule's follow-up or restart changes
    # (e.g. [optimizer.lr=1e-6] for a cooldown, [batch_size=4] after an OOM).
    extra_overrides: List[str] = field(default_factory=list)
    command: List[str] = field(default_factory=list)
    # Environment of the payload process (added to the job's environment).
    env: Dict[str, str] = field(default_factory=dict)
    # Commands (argv lists, same placeholders) run before the payload in every job attempt,
    # e.g. a copy of the data to node-local disk.
    setup: List[List[str]] = field(default_factory=list)
    # Commands run once per sweep before any payload starts (ttlaunch.job.preparation): by the
    # first job to start, while the others wait; once per distinct command and payload.env.
    prepare: List[List[str]] = field(default_factory=list)
    # kind=command: start the command under torchrun, one agent per task of the job, all of
    # them meeting at the first task's node (a DDP trainer on several nodes or GPUs).
    torchrun: bool = False
    metrics: TrainingMetricsConfig = field(default_factory=TrainingMetricsConfig)
    # kind=command: the command's micro-batch and gradient-accumulation keys (`key=value`
    # arguments it takes last, as extra_overrides), so that a GPU out of memory restarts it
    # with half the one and twice the other. Empty: no such restart. torchtune's are known.
    batch_keys: List[str] = field(default_factory=list)


@dataclass
class EvaluationConfig:
    """The evaluation jobs of the summary's evaluation matrix (run x task x epoch).

    Each is submitted once `<checkpoint>/<ready_file>` exists (or `<checkpoint>/adapter_weights/
    <ready_file>`, where cruijff_kit's post step moves it), named `<run>/epoch<N>` (all the
    tasks of one checkpoint, one model load) or, `one_job_per_task`, `<run>/<task>/epoch<N>`,
    and monitored like a training job. `command` is an argv list with {task}, {epoch},
    {checkpoint}, {run_name}, {output_dir} (the evaluation's own) and {job_dir}.
    """

    enabled: bool = True
    command: List[str] = field(
        default_factory=lambda: ["inspect", "eval", "{task}", "--model", "hf/{checkpoint}", "--log-dir", "{output_dir}"]
    )
    env: Dict[str, str] = field(default_factory=dict)
    # Where an epoch's checkpoint is; {run_output_dir} is the training run's output dir.
    checkpoint: str = "{run_output_dir}/epoch_{epoch}"
    # torchtune writes it last when it saves an epoch.
    ready_file: str = "adapter_config.json"
    # A job per (checkpoint, task), each loading the model, instead of one per checkpoint.
    one_job_per_task: bool = False


@dataclass
class CausePatternConfig:
    """A message of the user's cluster or code that tells a failure's cause: a regular
    expression searched in the end of a failed job's log, before the built-in table."""

    cause: FailureCause = FailureCause.unknown
    pattern: str = ""


@dataclass
class RemediationConfig:
    """`remediation=auto|off`: what ttlaunch does when a run ends without completing
    (ttlaunch.monitor.remediation). Causes are recorded either way."""

    enabled: bool = True
    # Checked before the built-in table (ttlaunch.inputs.failure_causes.PATTERNS).
    patterns: List[CausePatternConfig] = field(default_factory=list)
    # Restarts of one run for what the cluster broke, all causes together.
    max_restarts: int = 3
    # After host_oom, the run asks for this much more memory, up to max_mem_gb (unset: 4x its first ask).
    memory_factor: float = 1.5
    max_mem_gb: Optional[float] = None
    # After node_failure or communication, the node(s) the attempt ran on are left out of the
    # sweep's later submissions for this long (0: never), never more than this share of the
    # partition's nodes.
    exclude_hours: float = 6.0
    max_excluded_share: float = 0.25
    # After the same error (type and message, numbers and paths aside) ended this many runs,
    # the sweep submits nothing more and cancels its queued jobs (0: never).
    same_error_stop: int = 3


class RungUnit(str, Enum):
    """What a pruning rung counts: epochs trained (torchtune's checkpoints), or steps."""

    epochs = "epochs"
    steps = "steps"


class Direction(str, Enum):
    """Which way a measure is better."""

    minimize = "minimize"
    maximize = "maximize"


@dataclass
class PruningConfig:
    """`pruning=off|halving`: early stopping of the points that are behind, by asynchronous
    successive halving (ttlaunch.monitor.pruning)."""

    enabled: bool = False
    # Where points are judged: after this many epochs trained (1: after the first), or steps.
    rungs: List[int] = field(default_factory=lambda: [1, 2])
    unit: RungUnit = RungUnit.epochs
    # `loss`: the mean training loss since the previous rung; `<task>/<scorer>` or
    # `<task>/<scorer>/<metric>`: that evaluation's score of the rung's checkpoint (the
    # summary's matrix evaluates it: epoch rung-1, its numbering starts at 0).
    metric: str = "loss"
    # None: a loss is minimized, a score maximized.
    direction: Optional[Direction] = None
    # A point goes on past a rung when it is among the best 1/eta of the points there so far...
    eta: int = 3
    # ...once this many points reached the rung; before, every point goes on.
    min_points: int = 3
    # The command-line key whose values are replicates of one point (`+seed=1,2`): judged by their mean.
    replicate_key: str = "seed"

    @property
    def minimizes(self) -> bool:
        return self.direction is Direction.minimize if self.direction is not None else self.metric == "loss"

    def describe(self) -> str:
        rungs = ", ".join(map(str, self.rungs))
        return (
            f"Successive halving on {self.metric} ({'lower' if self.minimizes else 'higher'} is better) after {rungs} "
            f"{self.unit.value}: a point went on when among the best 1/{self.eta} of the points at the rung, "
            f"judged once {self.min_points} had reached it (or no other could)"
        )


@dataclass
class ReportConfig:
    """The sweep's results in summary.md (ttlaunch.records.results)."""

    # Sort the results table by this, best first: final_loss, min_loss, tokens_per_s,
    # wall_time, attempts, hours, or a run parameter's name.
    sort_by: str = "final_loss"


# Any: a summary's compute fields, checked by typed().
def with_run_overrides(compute: ComputeConfig, overrides: Dict[str, Any], source: str, field_name: str) -> ComputeConfig:
    """The preset with one run's own compute fields applied (validated like the preset)."""
    if not overrides:
        return compute
    return checked_compute(typed({**asdict(compute), **overrides}, ComputeConfig, source, field_name), source, field_name)


# The launcher's fields named as hydra-submitit-launcher names them (hydra.launcher.<name>):
# those that are a compute field of the same meaning, and sbatch flags with no field of
# their own, which join additional_parameters.
LAUNCHER_COMPUTE_FIELDS = (
    "timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node", "mem_gb", "nodes",
    "partition", "qos", "account", "constraint", "gres", "setup",
)
LAUNCHER_SBATCH_FLAGS = ("comment", "exclude", "cpus_per_gpu", "gpus_per_task", "mem_per_gpu", "mem_per_cpu")
# Every resource setting of the launcher (hydra_plugins.ttlaunch_launcher.config.LauncherConf).
LAUNCHER_RESOURCES = (*LAUNCHER_COMPUTE_FIELDS, *LAUNCHER_SBATCH_FLAGS, "additional_parameters", "max_num_timeout")


def _plain(value: object) -> Any:  # a node as plain lists and dicts, or the scalar the config held
    """A config node as plain lists and dicts; anything else as it is."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def with_launcher_fields(compute: ComputeConfig, launcher: DictConfig | None, source: str) -> ComputeConfig:
    """The compute preset with the launcher's own settings that are set applied over it
    (`hydra.launcher.timeout_min=30`, `hydra.launcher.partition=a40`), as they would be with
    hydra-submitit-launcher; validated like the preset."""
    if launcher is None:
        return compute
    values = {name: _plain(OmegaConf.select(launcher, name, default=None)) for name in LAUNCHER_RESOURCES}
    # Any: the launcher's values, checked by typed().
    changes: Dict[str, Any] = {name: values[name] for name in LAUNCHER_COMPUTE_FIELDS if values[name] is not None}
    flags = {name: values[name] for name in LAUNCHER_SBATCH_FLAGS if values[name] is not None}
    if flags or values["additional_parameters"]:
        changes["additional_parameters"] = {**compute.additional_parameters, **flags, **(values["additional_parameters"] or {})}
    if not changes:
        return compute
    return checked_compute(typed({**asdict(compute), **changes}, ComputeConfig, source, "hydra.launcher"), source, "hydra.launcher")


# Fields of a compute preset that must be at least this much (None: not asked for).
_AT_LEAST = {"nodes": 1, "tasks_per_node": 1, "cpus_per_task": 1, "gpus_per_node": 0, "timeout_min": 1}


def checked_compute(compute: ComputeConfig, source: str, key: str) -> ComputeConfig:
    """A compute preset whose resources can be asked for: no zero or negative counts, time or memory."""
    for name, least in _AT_LEAST.items():
        value = getattr(compute, name)
        if value is not None and value < least:
            raise InputError(source, f"{key}.{name}", f"must be at least {least}, got {value}")
    if compute.mem_gb is not None and compute.mem_gb <= 0:
        raise InputError(source, f"{key}.mem_gb", f"must be more than 0, got {compute.mem_gb}")
    if compute.gpu_request not in _GPU_REQUESTS:
        raise InputError(source, f"{key}.gpu_request", f"expected gres or gpus_per_node, got {compute.gpu_request!r}")
    named = compute.gres_gpus
    if named is not None and compute.gpus_per_node is not None and named != compute.gpus_per_node:
        raise InputError(
            source, f"{key}.gres",
            f"{compute.gres} asks for {named} GPUs, but {key}.gpus_per_node is {compute.gpus_per_node}: "
            "state the count once, in gpus_per_node (and the type in gpu_type)",
        )
    return compute


def check_argv_items(node: object, source: str, key: str, argvs: Sequence[str], argv_lists: Sequence[str] = ()) -> None:
    """Argv lists hold words. A YAML or Hydra value that is not one (`[true]` reads as a
    boolean and the job would run `True`; null; a nested list) is an error, not a silent str().
    `argvs` name fields holding one argv list, `argv_lists` fields holding a list of them."""
    data = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    if not isinstance(data, dict):
        return

    def check(where: str, argv: object) -> None:
        for index, item in enumerate(argv if isinstance(argv, list) else []):
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                raise InputError(
                    source, f"{where}[{index}]",
                    f"{item!r} is not a word of a command (YAML and Hydra read true, false and null as values): quote it",
                )

    for name in argvs:
        check(f"{key}.{name}", data.get(name))
    for name in argv_lists:
        for index, argv in enumerate(data.get(name) or []):
            check(f"{key}.{name}[{index}]", argv)


def typed(node: object, schema: Type[T], source: str, key: str) -> T:
    """Resolve config node `key` (in its whole config) and merge it onto its schema."""
    try:
        data = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        merged = OmegaConf.merge(OmegaConf.structured(schema), data if data is not None else {})
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        inner = getattr(err, "full_key", None)
        raise InputError(source, f"{key}.{inner}" if inner else key, str(err).splitlines()[0]) from None


