"""The command a job runs for one run: real torchtune, or any configured command.

Pure: builds the argv and environment; running it is ttlaunch.job.task's business.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Collection, Mapping, Sequence

import yaml

from ttlaunch.base import environment
from ttlaunch.base.errors import InputError
from ttlaunch.inputs import templates
from ttlaunch.inputs.payload_command import PayloadCommand
from ttlaunch.inputs.payload_kinds import PayloadKind, training_kind
from ttlaunch.inputs.scaffold_script import SCRIPT_NAME, ScaffoldScript
from ttlaunch.inputs.schema import ComputeConfig, PayloadConfig, check_metrics
from ttlaunch.inputs.summary import Experiment, Run
from ttlaunch.inputs.torchtune_configs import (
    DEFAULT_RECIPE,
    DISTRIBUTED,
    distributed_config,
    distributed_recipe,
    is_single_device,
)

# Controls of cruijff_kit summaries that its own tools read (the prompt template, the system
# prompt, the dataset type, validation during training in its custom recipe): not torchtune
# parameters. They are not passed, and the launch says so once.
OTHER_TOOLS_CONTROLS = frozenset({"system_prompt", "prompt", "dataset_type", "validation_during_training"})


def _value(value: object) -> str:
    # torchtune parses key=value with OmegaConf: True/False and 1e-05 read back as bool/float.
    return str(value)


def _placeholders(run: Run, experiment: Experiment, output_dir: Path, job_dir: Path) -> dict[str, str]:
    values = {key: _value(value) for key, value in {**experiment.controls, **run.parameters}.items()}
    values.update(run_name=run.name, output_dir=str(output_dir), job_dir=str(job_dir), experiment=experiment.name)
    return values


def _render(template: str, values: Mapping[str, str], where: str, source: str) -> str:
    try:
        return templates.render(template, values)
    except templates.TemplateError as err:
        raise InputError(source, where, str(err)) from None


def scaffold_config_path(experiment: Experiment, run: Run, payload: PayloadConfig) -> Path | None:
    """`<experiment dir>/<run>/<scaffold_config>` for a scaffolded experiment, else None."""
    if experiment.directory is None:
        return None
    return experiment.directory / run.name / payload.scaffold_config


def _scaffold_output_dir(config_path: Path, run_dir: Path) -> Path | None:
    data = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    value = data.get("output_dir") if isinstance(data, Mapping) else None
    if not isinstance(value, str) or "$" in value:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else run_dir / path


def build_payload(
    experiment: Experiment,
    run: Run,
    payload: PayloadConfig,
    job_dir: Path,
    source: str,
    command_line: Collection[str] = (),
    compute: ComputeConfig | None = None,
    script: ScaffoldScript | None = None,
    scaffold_config: Path | None = None,
) -> PayloadCommand:
    """The command for `run`, whose Hydra job dir is `job_dir`, on `compute` (by default one
    task on one node without GPUs).

    `source` names the payload config (for messages); `command_line` the run's parameters
    that came from the command line (`+seed=1`), each of which must reach the trainer;
    `script` the scaffold's batch script, when the run has one (it is wrapped around torchtune);
    `scaffold_config` where its scaffold's config is read (its copy, in a job: ttlaunch.inputs.input_copies).
    Checks everything it can without running anything, so the launcher can call it for
    every job before submitting one.
    """
    output_dir = job_dir / "outputs"
    argv: list[str] = []
    cwd = None
    kind = training_kind(payload.kind, source)
    if kind is PayloadKind.torchtune:
        argv, output_dir, cwd = _torchtune_argv(
            experiment, run, payload, output_dir, source, command_line, compute or ComputeConfig(), script, scaffold_config
        )
    values = _placeholders(run, experiment, output_dir, job_dir)
    if kind is PayloadKind.command:
        if not payload.command:
            raise InputError(source, "payload.command", "kind=command needs a command (an argv list)")
        argv = [_render(item, values, "payload.command", source) for item in payload.command]
        _check_used(payload, command_line)
        _check_program(argv[0], source, "payload.command[0]")
        check_metrics(payload.metrics, source, "payload.metrics", "run's")
    argv += [_render(item, values, "payload.extra_overrides", source) for item in payload.extra_overrides]
    env = {key: _render(str(value), values, f"payload.env.{key}", source) for key, value in payload.env.items()}
    env.update(environment.job_variables(run.name, output_dir, job_dir))
    setup = _commands(payload.setup, values, "payload.setup", source)
    prepare = _commands(payload.prepare, values, "payload.prepare", source)
    return PayloadCommand(
        argv=tuple(argv), env=env, output_dir=output_dir, setup=setup, prepare=prepare, cwd=cwd
    )


def _commands(
    commands: Sequence[Sequence[str]], values: Mapping[str, str], field: str, source: str
) -> tuple[tuple[str, ...], ...]:
    rendered = tuple(
        tuple(_render(item, values, f"{field}[{index}]", source) for item in command) for index, command in enumerate(commands)
    )
    for index, command in enumerate(rendered):
        if command:
            _check_program(command[0], source, f"{field}[{index}][0]")
    return rendered


def _placeholder_names(payload: PayloadConfig) -> set[str]:
    """Every {name} the command's argv, extra overrides, environment, setup and preparation use."""
    texts = [*payload.command, *payload.extra_overrides, *map(str, payload.env.values())]
    texts += [item for command in [*payload.setup, *payload.prepare] for item in command]
    return {name for text in texts for name in templates.placeholders(text)}


def _check_used(payload: PayloadConfig, command_line: Collection[str]) -> None:
    """A command-line run parameter that no placeholder of the command uses would be lost.
    (The summary's own values need not all be used: a command takes what it needs, and the
    launch lists the controls it leaves.)"""
    used = _placeholder_names(payload)
    for key in command_line:
        if key not in used:
            raise InputError(
                "command line", f"+{key}", f"payload.command has no {{{key}}} placeholder: the runs would not see it"
            )


def _check_program(program: str, source: str, field: str) -> None:
    """A relative path to the program (./train.sh, scripts/run) must exist from here: the job
    starts in this directory too."""
    path = Path(program)
    if "/" in program and not path.is_absolute() and not path.exists():
        raise InputError(source, field, f"{program} does not exist (relative to {Path.cwd()})")


def _origin(key: str, experiment: Experiment, run: Run, command_line: Collection[str]) -> tuple[str, str]:
    """Where a value the trainer gets was given: (source, field) for messages."""
    if key in command_line:
        return "command line", f"+{key}"
    if key in run.parameters:
        return experiment.source, f"runs.{run.name}.{key}"
    return experiment.source, f"controls.{key}"


def _torchtune_key(key: str, payload: PayloadConfig, experiment: Experiment, run: Run, command_line: Collection[str]) -> str:
    """The torchtune config key a run parameter or control sets."""
    target = payload.key_map.get(key) or (key if "." in key else None)
    if target is None:
        source, field = _origin(key, experiment, run, command_line)
        close = difflib.get_close_matches(key, payload.key_map, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        known = ", ".join(sorted(payload.key_map))
        raise InputError(source, field, f"no torchtune key for {key!r}; {hint}map it in payload.key_map (known: {known})")
    return target


def unpassed_controls(experiment: Experiment, payload: PayloadConfig) -> list[str]:
    """The summary's controls the trainer does not get: for torchtune those of other tools
    (any other unknown one is an error), for a command those it has no placeholder for."""
    if training_kind(payload.kind, "payload") is PayloadKind.torchtune:
        return [key for key in experiment.controls if key in OTHER_TOOLS_CONTROLS and key not in payload.key_map]
    used = _placeholder_names(payload)
    return [key for key in experiment.controls if key not in used]


def _distributed(compute: ComputeConfig) -> bool:
    """More than one GPU, or more than one node: torchtune's distributed recipes, under torchrun."""
    return compute.gpus > 1 or compute.nodes > 1


def _recipe(payload: PayloadConfig, compute: ComputeConfig, source: str, scaffold_recipe: str | None = None) -> str:
    """The recipe for this compute: payload.recipe, else the one the scaffold's batch script
    runs, else the single-device one on one device (or the CPU), its distributed
    counterpart on more GPUs or nodes."""
    gpus, distributed = compute.gpus, _distributed(compute)
    recipe = payload.recipe or scaffold_recipe
    where = "payload.recipe" if payload.recipe or scaffold_recipe is None else f"{SCRIPT_NAME}: tune run"
    if recipe is None:
        return distributed_recipe(DEFAULT_RECIPE) if distributed else DEFAULT_RECIPE
    if distributed and is_single_device(recipe.removesuffix(".__main__")):
        raise InputError(
            source, where,
            f"{recipe} trains on one device, but compute.gpus_per_node is {gpus} on {compute.nodes} node(s): "
            f"use {distributed_recipe(recipe)} (or leave payload.recipe unset to pick by the GPU count)",
        )
    if gpus == 0 and recipe.removesuffix(".__main__").endswith(DISTRIBUTED):
        raise InputError(
            source, where,
            f"{recipe} needs GPUs (torchtune's distributed recipes use NCCL), but this compute preset has none",
        )
    return recipe


def _config(config: str, compute: ComputeConfig, source: str) -> str:
    """The config for this compute: a built-in single-device config becomes its multi-device
    counterpart on more GPUs or nodes."""
    if not _distributed(compute):
        return config
    counterpart = distributed_config(config)
    if counterpart is None:
        raise InputError(
            source, "payload.base_config",
            f"{config} is a single-device config without a multi-device counterpart in torchtune, but "
            f"compute.gpus_per_node is {compute.gpus} on {compute.nodes} node(s): name a multi-device config",
        )
    return counterpart


def _torchtune_argv(
    experiment: Experiment,
    run: Run,
    payload: PayloadConfig,
    output_dir: Path,
    source: str,
    command_line: Collection[str],
    compute: ComputeConfig,
    script: ScaffoldScript | None,
    config: Path | None,
) -> tuple[list[str], Path, Path | None]:
    """The `tune run` argv, the run's output dir, and where the command runs (the scaffold's
    batch script `script`, wrapped around the argv, runs in its run's dir; else None).
    `config`: where the scaffold's config is read (else in its run's dir)."""
    if compute.tasks_per_node != 1:
        raise InputError(
            source, "compute.tasks_per_node",
            f"torchtune runs one task per node (tune run starts a process per GPU), got {compute.tasks_per_node}",
        )
    scaffold = scaffold_config_path(experiment, run, payload)
    recipe = _recipe(payload, compute, source, script.recipe if script is not None else None)
    # One process per GPU on more than one, or on several nodes (torchrun, through tune run;
    # the job adds where the nodes meet: ttlaunch.job.rendezvous).
    processes = ["--nproc_per_node", str(max(compute.gpus, 1))] if _distributed(compute) else []
    launch = ["tune", "run", *processes, recipe, "--config"]
    # Without GPUs, a config written for them (device: cuda, dtype: bf16) fails deep in the job.
    on_cpu = ["device=cpu", "dtype=fp32"] if compute.gpus == 0 else []
    if scaffold is not None:
        config = config or scaffold
        if not config.is_file():
            raise InputError(
                experiment.source, f"runs.{run.name}", f"scaffolded experiment has no run config {config}"
            )
        # A scaffold's config is complete: the run's parameters are already in it; only what
        # the command line adds (+seed=1) goes on top. Its relative paths are from its run's dir.
        scaffold_output = _scaffold_output_dir(config, scaffold.parent)
        argv = [*launch, str(config)]
        if scaffold_output is None:
            argv.append(f"output_dir={output_dir}")
        argv += [*(script.overrides if script is not None else ()), *on_cpu]
        argv += [
            f"{_torchtune_key(key, payload, experiment, run, command_line)}={_value(run.parameters[key])}" for key in command_line
        ]
        argv += payload.overrides
        if script is not None:  # its own steps around ttlaunch's command, in the run's dir
            return ["bash", "-c", script.wrapper(run.name), SCRIPT_NAME, *argv], scaffold_output or output_dir, scaffold.parent
        return argv, scaffold_output or output_dir, None
    if not payload.base_config:
        raise InputError(source, "payload.base_config", "needed for a run without a scaffold config")
    overrides = [f"output_dir={output_dir}", *on_cpu]
    mapped = {key: value for key, value in experiment.controls.items() if key not in OTHER_TOOLS_CONTROLS or key in payload.key_map}
    mapped.update(run.parameters)
    for key, value in mapped.items():
        overrides.append(f"{_torchtune_key(key, payload, experiment, run, command_line)}={_value(value)}")
    return [*launch, _config(payload.base_config, compute, source), *overrides, *payload.overrides], output_dir, None
