"""Read ttlaunch's typed inputs out of a composed Hydra config, naming their sources.

Used in the launching process (to validate everything before anything is written) and in
the job (to build the payload), so both read the same things the same way.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Mapping, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf

from ttlaunch.base.errors import InputError
from ttlaunch.inputs.failure_causes import CausePattern
from ttlaunch.inputs.input_copies import copy_of
from ttlaunch.inputs.payload import build_payload, scaffold_config_path
from ttlaunch.inputs.payload_command import PayloadCommand
from ttlaunch.inputs.payload_kinds import PayloadKind, training_kind
from ttlaunch.inputs.rulebook import Rules, parse_rules
from ttlaunch.inputs.sbatch_values import flag_name
from ttlaunch.inputs.scaffold_script import SCRIPT_NAME, ScaffoldScript, read_script
from ttlaunch.inputs.schema import (
    LAUNCHER_COMPUTE_FIELDS,
    ComputeConfig,
    EvaluationConfig,
    Executor,
    PayloadConfig,
    PruningConfig,
    RemediationConfig,
    ReportConfig,
    RequeueConfig,
    RungUnit,
    UserConfig,
    check_argv_items,
    checked_compute,
    typed,
    with_launcher_fields,
    with_run_overrides,
)
from ttlaunch.inputs.summary import SUMMARY_FILE_NAME, Experiment, Run, Scalar, parse_experiment

EXPERIMENT_DIRS_SCHEME = "ttlaunch-experiments"


@dataclass(frozen=True)
class LaunchInputs:
    experiment: Experiment
    compute: ComputeConfig
    requeue: RequeueConfig
    user: UserConfig
    payload: PayloadConfig
    compute_source: str
    payload_source: str
    rules: Rules = Rules()
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    remediation: RemediationConfig = field(default_factory=RemediationConfig)
    cause_patterns: Sequence[CausePattern] = ()  # remediation.patterns, compiled
    pruning: PruningConfig = field(default_factory=PruningConfig)
    # Run parameters given on the command line (`+seed=1`, one value of `+lr=1e-4,5e-4`):
    # they apply to every run of this job's sweep point, over the summary's values.
    parameters: Mapping[str, Scalar] = field(default_factory=dict)
    # Compute fields the user set outright (`compute.mem_gb=32`, `hydra.launcher.mem_gb=32`):
    # neither a scaffold's batch script nor a run's `compute` changes them.
    explicit_compute: frozenset[str] = frozenset()
    # Whether jobs go to SLURM, where a scaffold's #SBATCH lines ask for what they say
    # (locally nothing is asked of a scheduler, and the machine has what it has).
    on_slurm: bool = False
    # In a job: the copies of its run's files that its submission took (ttlaunch.inputs.input_copies),
    # read in place of the files themselves. None: the experiment's own files.
    copies: Path | None = None

    def run(self, run_name: str) -> Run:
        """The summary's run, with the command line's run parameters applied."""
        run = self.experiment.run(run_name)
        if not self.parameters:
            return run
        return replace(run, parameters={**run.parameters, **self.parameters})

    def for_overrides(self, overrides: Sequence[str]) -> "LaunchInputs":
        """These inputs for one job of the sweep, given its overrides (its command-line parameters)."""
        return replace(self, parameters=command_line_parameters(overrides))

    @property
    def payload_kind(self) -> PayloadKind:
        """What the runs run (payload.kind, checked)."""
        return training_kind(self.payload.kind, self.payload_source)

    def payload_for(self, run_name: str, job_dir: Path) -> PayloadCommand:
        """The command a job of the run runs (command-line parameters included)."""
        script = self.scaffold_script(run_name)
        config = scaffold_config_path(self.experiment, self.experiment.run(run_name), self.payload)
        command = build_payload(
            self.experiment, self.run(run_name), self.payload, job_dir, self.payload_source, tuple(self.parameters),
            compute=self._compute(run_name, script), script=script,
            scaffold_config=self._file(config) if config is not None else None,
        )
        if self.copies is None or self.payload_kind is not PayloadKind.command:
            return command
        # The argv's files that were copied; any other path it names (where to write) is as given.
        copied = {item: str(self._file(Path(item))) for item in command.argv if Path(item).is_absolute()}
        copied = {item: copy for item, copy in copied.items() if Path(copy).is_file()}
        return replace(command, argv=tuple(copied.get(item, item) for item in command.argv))

    @property
    def root(self) -> Path:
        """The experiment's dir: its scaffold's, else its summary's."""
        return self.experiment.directory or Path(self.experiment.source).parent

    def _file(self, path: Path) -> Path:
        """Where the run's file `path` is read: its copy in a job that has one."""
        return copy_of(path, self.root, self.copies)

    def submission_spec(self, run_name: str, job_dir: Path) -> dict[str, object]:
        """What a job of the run is submitted with (recorded in jobs.json; a later launch
        compares it): the values the trainer gets, the compute asked for, the command, and
        the digests of the files it reads as it starts."""
        run = self.run(run_name)
        command = self.payload_for(run_name, job_dir)
        return {
            "parameters": {**self.experiment.controls, **run.parameters},
            "compute": asdict(self.compute_for(run_name)),
            "command": list(command.argv),
            "files": self.input_files(run_name, command),
        }

    def input_files(self, run_name: str, command: PayloadCommand) -> dict[str, str]:
        """The sha256 of each of the run's files a job reads when it starts, by its name
        (input_paths)."""
        return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in self.input_paths(run_name, command).items()}

    def input_paths(self, run_name: str, command: PayloadCommand) -> dict[str, Path]:
        """The run's own files a job reads when it starts, by their path in the experiment's
        dir: its scaffold's config and batch script; the files a command payload names that
        lie in the experiment's dir. (A job runs from their copies: ttlaunch.inputs.input_copies.)"""
        root = self.root
        paths: list[Path] = []
        config = scaffold_config_path(self.experiment, self.experiment.run(run_name), self.payload)
        if self.payload_kind is PayloadKind.torchtune and config is not None:
            paths += [config, config.parent / SCRIPT_NAME]
        elif self.payload_kind is PayloadKind.command:
            paths += [Path(item) for item in command.argv if Path(item).is_absolute() and Path(item).is_relative_to(root)]
        return {str(path.relative_to(root)): path for path in paths if path.is_relative_to(root) and path.is_file()}

    def run_files(self, run_name: str, command: PayloadCommand) -> frozenset[str]:
        """Of input_paths, those the job runs (a command's script): what lies beside them may be read too."""
        if self.payload_kind is not PayloadKind.command:
            return frozenset()
        return frozenset(self.input_paths(run_name, command))

    def compute_for(self, run_name: str) -> ComputeConfig:
        """The compute preset as the run asks for it: on SLURM, the resources of its scaffold's
        batch script over the preset's, then its own `compute:` fields in the summary, then
        what the user set outright."""
        return self._compute(run_name, self.scaffold_script(run_name))

    def _compute(self, run_name: str, script: ScaffoldScript | None) -> ComputeConfig:
        run = self.experiment.run(run_name)
        compute = self.compute
        if script is not None and self.on_slurm:
            changes = {key: value for key, value in script.compute.items() if key not in self.explicit_compute}
            if script.additional:
                changes["additional_parameters"] = {**compute.additional_parameters, **script.additional}
            compute = with_run_overrides(compute, changes, str(script.path), "#SBATCH")
        own = {key: value for key, value in run.compute.items() if key not in self.explicit_compute}
        return with_run_overrides(compute, own, self.experiment.source, f"runs.{run_name}.compute")

    def evaluation_compute_for(self, run_name: str) -> ComputeConfig:
        """What an evaluation of the run asks for: its run's compute with the summary's
        `evaluation.compute` over it (cruijff_kit's estimate for evaluations), under what the
        user set outright."""
        changes = {
            key: value for key, value in self.experiment.evaluation_settings.compute.items() if key not in self.explicit_compute
        }
        return with_run_overrides(self.compute_for(run_name), changes, self.experiment.source, "evaluation.compute")

    def scaffold_script(self, run_name: str) -> ScaffoldScript | None:
        """The run's scaffold batch script (cruijff_kit's finetune.slurm), when it has one."""
        config = scaffold_config_path(self.experiment, self.experiment.run(run_name), self.payload)
        if self.payload_kind is not PayloadKind.torchtune or config is None:
            return None
        return read_script(self._file(config.parent / SCRIPT_NAME))


def _choices(hydra_cfg: DictConfig) -> dict[str, str]:
    """Hydra's record of the option chosen in each config group (a group still missing its
    choice, `???`, has none)."""
    node = OmegaConf.select(hydra_cfg, "runtime.choices", default=None)
    data = OmegaConf.to_container(node, resolve=False) if OmegaConf.is_config(node) else node
    if not isinstance(data, dict):
        return {}
    return {str(group): choice for group, choice in data.items() if isinstance(choice, str) and choice != "???"}


def experiment_file(hydra_cfg: DictConfig) -> Path | None:
    """The file the `experiment` group option was read from, searched as Hydra does."""
    choice = _choices(hydra_cfg).get("experiment")
    if not choice:
        return None
    for source in OmegaConf.select(hydra_cfg, "runtime.config_sources", default=None) or []:
        path, scheme = str(source.path), str(source.schema)
        if scheme == "file":
            candidate = Path(path) / "experiment" / f"{choice}.yaml"
        elif scheme == "pkg":
            try:
                candidate = Path(str(resources.files(path.replace("/", ".")))) / "experiment" / f"{choice}.yaml"
            except ModuleNotFoundError:
                continue
        elif scheme == EXPERIMENT_DIRS_SCHEME:
            candidate = Path(path) / choice / SUMMARY_FILE_NAME
        else:
            continue
        if candidate.is_file():
            return candidate
    return None


def read_experiment(cfg: DictConfig, hydra_cfg: DictConfig) -> Experiment:
    location = experiment_file(hydra_cfg)
    choice = _choices(hydra_cfg).get("experiment")
    source = str(location) if location else f"experiment={choice}"
    node = cfg.get("experiment")
    if node is None:
        raise InputError("command line", "experiment", "no experiment chosen: add experiment=<name>")
    data = OmegaConf.to_container(node, resolve=True)
    default_dir = location.parent if location is not None and location.name == SUMMARY_FILE_NAME else None
    experiment = parse_experiment(
        data, source, default_directory=default_dir, script_base=location.parent if location is not None else None
    )
    if experiment.directory is not None and not experiment.directory.is_dir():
        raise InputError(source, "experiment.directory", f"{experiment.directory} is not a directory")
    return experiment


def _parsed(overrides: Sequence[str]) -> list[Override]:
    """Command-line overrides as Hydra's parser reads them."""
    return OverridesParser.create().parse_overrides(list(overrides))


def command_line_parameters(overrides: Sequence[str]) -> dict[str, Scalar]:
    """Run parameters from command-line overrides: each one that adds a new top-level key
    (`+seed=1`, `++lr=1e-4`) names a parameter of the runs, typed as Hydra types it.
    Dotted keys (`+compute.x=1`) change ttlaunch's own config; a sweep (`+seed=1,2`) is not
    one value yet (each of its jobs gets one)."""
    # Only an add starts with '+'. Each job's overrides are parsed as the launch plans and
    # submits it: the jobs of a combination share its adds, parsed once.
    return dict(_parameters_of(tuple(override for override in overrides if override.startswith("+"))))


@lru_cache(maxsize=1024)
def _parameters_of(adds: tuple[str, ...]) -> dict[str, Scalar]:
    parameters: dict[str, Scalar] = {}
    for override in _parsed(adds):
        name = override.key_or_group
        if not (override.is_add() or override.is_force_add()) or "." in name or override.is_sweep_override():
            continue
        value = override.value()
        if not isinstance(value, (str, int, float, bool)):  # a list or a mapping: nothing a trainer's key takes
            raise InputError("command line", override.input_line or name, "a run parameter takes one value (a number or a word)")
        parameters[name] = value
    return parameters


def command_line_compute_fields(overrides: Sequence[str]) -> set[str]:
    """The compute fields the command line sets (`compute.mem_gb=32`; not `compute=<preset>`)."""
    keys = [override.key_or_group for override in _parsed(overrides)]
    return {key.removeprefix("compute.") for key in keys if key.startswith("compute.")}


def command_line_fixed_keys(overrides: Sequence[str]) -> set[str]:
    """The keys the command line gives one value to (`seed=1`, not `seed=1,2` or a range):
    the same in every job of the sweep, so not what tells its jobs apart."""
    return {override.key_or_group for override in _parsed(overrides) if not override.is_sweep_override()}


def read_inputs(cfg: DictConfig, hydra_cfg: DictConfig) -> LaunchInputs:
    choices = _choices(hydra_cfg)
    payload_source = f"payload={choices.get('payload', '?')}"
    check_argv_items(cfg.get("payload"), payload_source, "payload", ("command", "extra_overrides", "overrides"), ("setup", "prepare"))
    check_argv_items(cfg.get("evaluation"), "ttlaunch.yaml", "evaluation", ("command",))
    scheduling = read_scheduling(cfg, hydra_cfg)
    payload = typed(cfg.get("payload"), PayloadConfig, payload_source, "payload")
    if payload.batch_keys and (len(payload.batch_keys) != 2 or payload.kind is not PayloadKind.command):
        raise InputError(
            payload_source, "payload.batch_keys",
            "a command's two keys, its micro-batch's and its gradient accumulation's (torchtune's are known)",
        )
    remediation_source = f"remediation={choices.get('remediation', '?')}"
    remediation = read_remediation(cfg.get("remediation"), remediation_source)
    experiment = read_experiment(cfg, hydra_cfg)
    evaluation = typed(cfg.get("evaluation"), EvaluationConfig, "ttlaunch.yaml", "evaluation")
    pruning_source = f"pruning={choices.get('pruning', '?')}"
    parameters = command_line_parameters(OmegaConf.select(hydra_cfg, "overrides.task", default=None) or [])
    pruning = read_pruning(
        cfg.get("pruning"), pruning_source, experiment, evaluation, training_kind(payload.kind, payload_source), parameters,
    )
    return LaunchInputs(
        experiment=experiment,
        compute=scheduling.compute,
        requeue=scheduling.requeue,
        user=typed(cfg.get("user"), UserConfig, "user.yaml", "user"),
        payload=payload,
        compute_source=scheduling.compute_source,
        payload_source=payload_source,
        explicit_compute=scheduling.explicit,
        on_slurm=scheduling.on_slurm,
        rules=read_rules(cfg.get("monitoring"), f"monitoring={choices.get('monitoring', '?')}"),
        evaluation=evaluation,
        report=typed(cfg.get("report"), ReportConfig, "ttlaunch.yaml", "report"),
        remediation=remediation,
        cause_patterns=cause_patterns(remediation, remediation_source),
        pruning=pruning,
        parameters=parameters,
    )


def read_remediation(node: object, source: str) -> RemediationConfig:
    """The remediation settings, each number in its range (its patterns: cause_patterns)."""
    remediation = typed(node, RemediationConfig, source, "remediation")
    for name, least in (("max_restarts", 0), ("memory_factor", 1), ("same_error_stop", 0), ("exclude_hours", 0)):
        value = getattr(remediation, name)
        if value < least:
            raise InputError(source, f"remediation.{name}", f"expected at least {least}, got {value}")
    if not 0 <= remediation.max_excluded_share <= 1:
        raise InputError(source, "remediation.max_excluded_share", f"expected a share from 0 to 1, got {remediation.max_excluded_share}")
    if remediation.max_mem_gb is not None and remediation.max_mem_gb <= 0:
        raise InputError(source, "remediation.max_mem_gb", f"expected a positive number of GB, got {remediation.max_mem_gb}")
    return remediation


def read_pruning(
    node: object, source: str, experiment: Experiment, evaluation: EvaluationConfig, kind: PayloadKind,
    parameters: Mapping[str, Scalar] = {},
) -> PruningConfig:
    """The pruning settings, checked against what the sweep trains and evaluates: its rungs
    before every run's last epoch (`parameters`: the command line's, over the summary's), its
    metric one the runs have at every rung."""
    pruning = typed(node, PruningConfig, source, "pruning")
    if not pruning.enabled:
        return pruning
    rungs = pruning.rungs
    if not rungs or any(rung < 1 for rung in rungs) or list(rungs) != sorted(set(rungs)):
        raise InputError(
            source, "pruning.rungs", f"expected rising whole numbers of {pruning.unit.value}, at least 1; got {list(rungs)}",
        )
    if pruning.eta < 2:
        raise InputError(source, "pruning.eta", f"expected at least 2 (the best 1/eta go on), got {pruning.eta}")
    if pruning.min_points < 1:
        raise InputError(source, "pruning.min_points", f"expected at least 1, got {pruning.min_points}")
    if pruning.unit is RungUnit.epochs:
        if not kind.saves_epochs:
            raise InputError(
                source, "pruning.unit", f"epochs needs a payload that saves epochs (torchtune); a {kind.value} payload's are steps",
            )
        for run in experiment.fine_tuned:
            epochs = {**experiment.controls, **run.parameters, **parameters}.get("epochs")
            if isinstance(epochs, int) and not isinstance(epochs, bool) and rungs[-1] >= epochs:
                raise InputError(
                    source, "pruning.rungs",
                    f"rung {rungs[-1]} is not before the last epoch of run {run.name} ({epochs} epochs): it would stop nothing",
                )
    if pruning.metric != "loss":
        _check_pruning_score(pruning, source, experiment, evaluation)
    return pruning


def _check_pruning_score(pruning: PruningConfig, source: str, experiment: Experiment, evaluation: EvaluationConfig) -> None:
    """A score to prune by is an evaluation the summary's matrix asks of every fine-tuned run at every rung."""
    task, _, scorer = pruning.metric.partition("/")
    where = "pruning.metric"
    if not scorer:
        raise InputError(source, where, f"expected loss or <task>/<scorer>[/<metric>], got {pruning.metric!r}")
    if pruning.unit is not RungUnit.epochs:
        raise InputError(source, where, "a score is of an epoch's checkpoint: rungs in epochs (pruning.unit=epochs)")
    if not evaluation.enabled:
        raise InputError(source, where, f"{task}'s scores come from the sweep's evaluations, off (evaluation.enabled=false)")
    matrix = experiment.evaluation_matrix
    known = sorted({item.name for item in experiment.evaluation_tasks} | {name for cell in matrix for name in cell.tasks})
    if task not in known:
        raise InputError(source, where, f"{experiment.source} has no evaluation task {task!r} (it has: {', '.join(known) or 'none'})")
    missing = []
    for run in experiment.fine_tuned:
        epochs = {epoch for cell in matrix if cell.run == run.name and task in cell.tasks for epoch in cell.epochs}
        missing += [f"{run.name} epoch {rung - 1}" for rung in pruning.rungs if rung - 1 not in epochs]
    if missing:
        raise InputError(
            source, where,
            f"{experiment.source}'s evaluation matrix does not evaluate {task} at every rung (rung N is epoch N-1): "
            f"missing {', '.join(missing)}",
        )


def cause_patterns(remediation: RemediationConfig, source: str) -> list[CausePattern]:
    """The user's patterns, compiled; InputError naming the one that is no regular expression."""
    compiled = []
    for index, item in enumerate(remediation.patterns):
        where = f"remediation.patterns[{index}].pattern"
        if not item.pattern:
            raise InputError(source, where, "is empty: it would match every log")
        try:
            compiled.append(CausePattern(item.cause, item.pattern))
        except re.error as err:
            raise InputError(source, where, f"{item.pattern!r} is no regular expression: {err}") from None
    return compiled


@dataclass(frozen=True)
class Scheduling:
    """What a job asks the scheduler for, in ttlaunch's app or any other Hydra app."""

    compute: ComputeConfig
    requeue: RequeueConfig
    compute_source: str
    # The compute fields set on the command line or as the launcher's own settings.
    explicit: frozenset[str] = frozenset()
    on_slurm: bool = False


# sbatch's requeue flags, as an app written for hydra-submitit-launcher asks for requeue
# (`hydra.launcher.additional_parameters: {requeue: ""}`, as vec-playbook's requeue group does).
_REQUEUE_FLAGS = {"requeue": True, "no-requeue": False}


def read_scheduling(cfg: DictConfig, hydra_cfg: DictConfig, groups: str = "") -> Scheduling:
    """The compute preset and the requeue choice, the launcher's own settings over them.

    `groups` is where ttlaunch's config groups are: "" in ttlaunch's own app (`compute=...`),
    "ttlaunch/" in any other (`+ttlaunch/compute=...`, node `ttlaunch.compute`), where both
    are optional, else the defaults: no SLURM resources asked for beyond an hour, and on
    SLURM, requeue on preemption (as submitit does) and on no timeout. An app's own groups
    of the same name are its own business. `requeue` or `no-requeue` among the launcher's
    additional_parameters decide requeue as they would for sbatch."""
    choices = _choices(hydra_cfg)
    compute_group, requeue_group = f"{groups}compute", f"{groups}requeue"
    launcher = OmegaConf.select(hydra_cfg, "launcher", default=None)
    on_slurm = _on_slurm(launcher)
    compute_source = (
        f"{compute_group}={choices[compute_group]}" if compute_group in choices
        else f"hydra/launcher={choices.get('hydra/launcher', '?')}"
    )
    compute = ComputeConfig()
    if compute_group in choices:
        node = OmegaConf.select(cfg, compute_group.replace("/", "."))
        compute = checked_compute(typed(node, ComputeConfig, compute_source, "compute"), compute_source, "compute")
    compute = with_launcher_fields(compute, launcher, compute_source)
    if requeue_group in choices:
        node = OmegaConf.select(cfg, requeue_group.replace("/", "."))
        requeue = typed(node, RequeueConfig, f"{requeue_group}={choices[requeue_group]}", "requeue")
    else:
        requeue = RequeueConfig(enabled=on_slurm)
    asked = {key: _REQUEUE_FLAGS[flag_name(key)] for key in compute.additional_parameters if flag_name(key) in _REQUEUE_FLAGS}
    if asked:
        if len(set(asked.values())) > 1:
            raise InputError(compute_source, "hydra.launcher.additional_parameters", "asks for both requeue and no-requeue")
        compute = replace(compute, additional_parameters={k: v for k, v in compute.additional_parameters.items() if k not in asked})
        requeue = replace(requeue, enabled=next(iter(asked.values())))
    max_num_timeout = OmegaConf.select(launcher, "max_num_timeout", default=None)
    if max_num_timeout is not None:
        requeue = replace(requeue, max_num_timeout=max_num_timeout)
    explicit = {name for name in LAUNCHER_COMPUTE_FIELDS if OmegaConf.select(launcher, name, default=None) is not None}
    explicit |= command_line_compute_fields(OmegaConf.select(hydra_cfg, "overrides.task", default=None) or [])
    return Scheduling(compute, requeue, compute_source, frozenset(explicit), on_slurm)


def _on_slurm(launcher: DictConfig | None) -> bool:
    """Whether the launcher's executor is SLURM: typed by Hydra at launch, a word in the config
    a job reads back."""
    executor = OmegaConf.select(launcher, "executor", default=None) if launcher is not None else None
    return executor is not None and Executor(executor) is Executor.slurm


def read_rules(node: object, source: str) -> Rules:
    """The `monitoring` group's rules (none when the config has no such node)."""
    data = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    return parse_rules(data, source)
