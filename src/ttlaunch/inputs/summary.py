"""Experiment summaries: load and validate them into typed objects.

Two shapes are accepted, and may be mixed:

* the plain shape: ``experiment: {name}`` and ``runs: [{name, type, <parameter>: value, ...}]``;
* cruijff_kit's shape: ``experiment: {name, directory|dir, ...}``, ``controls``, ``variables``,
  ``models``, ``data``, ``runs: [{name, type, model, parameters: {...}}]`` and
  ``evaluation: {tasks, matrix, scorers, ...}``: every field of its design template is
  accepted; those ttlaunch does not use are listed (ttlaunch.inputs.summary_fields).

Everything here is pure: a mapping goes in, an ``Experiment`` or an ``InputError`` comes out.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import yaml

from ttlaunch.base.errors import InputError
from ttlaunch.inputs.sbatch_values import memory_gb, time_minutes
from ttlaunch.inputs.summary_fields import UNUSED_RUN_KEYS, not_used

SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+")
SUMMARY_FILE_NAME = "experiment_summary.yaml"

# Keys of a run entry that are not training parameters.
_RUN_KEYS = {"name", "type", "model", "parameters", "compute", *UNUSED_RUN_KEYS}
# cruijff_kit's names of a run's compute estimate, and how each becomes a compute preset field.
CRUIJFF_COMPUTE = {"time": ("timeout_min", time_minutes), "mem": ("mem_gb", memory_gb), "gpus": ("gpus_per_node", None)}
Scalar = str | int | float | bool


class RunType(enum.Enum):
    FINE_TUNED = "fine-tuned"
    CONTROL = "control"
    EVAL_ONLY = "eval-only"

    @classmethod
    def parse(cls, text: str) -> "RunType":
        """Case-insensitive; '_' and ' ' count as '-' (Fine-tuned, fine_tuned, Eval only)."""
        normalised = re.sub(r"[\s_]+", "-", text.strip().lower())
        for member in cls:
            if member.value == normalised:
                return member
        raise ValueError(text)


@dataclass(frozen=True)
class Run:
    name: str
    type: RunType
    parameters: Mapping[str, Scalar] = field(default_factory=dict)
    model: str | None = None
    # Fields of the compute preset this run changes (say, more memory), by name.
    compute: Mapping[str, object] = field(default_factory=dict)

    @property
    def checkpoint_path(self) -> Path | None:
        """An eval-only run's existing checkpoint (cruijff_kit's `parameters.checkpoint_path`)."""
        value = self.parameters.get("checkpoint_path")
        return Path(str(value)).expanduser() if value not in (None, "") else None


# Per-task settings of a summary's evaluation task, and the `inspect eval` option each sets.
TASK_SETTINGS = {"system_prompt": "--system-message", "temperature": "--temperature", "max_tokens": "--max-tokens"}


@dataclass(frozen=True)
class EvaluationTask:
    """A task of the summary's evaluation: inspect's registry name, or the task `name` in
    an inspect task file (`script`, relative to the summary's own dir); its settings
    (TASK_SETTINGS) and task arguments (`args`, inspect's -T).

    cruijff_kit's tasks also name their `dataset` (a file, or `same`: the training data),
    and may override the prompt template, the system prompt and the assistant prefix."""

    name: str
    script: Path | None = None
    settings: Mapping[str, Scalar] = field(default_factory=dict)
    args: Mapping[str, Scalar] = field(default_factory=dict)
    dataset: str | None = None
    prompt: str | None = None
    assistant_prefix: str | None = None

    @property
    def reference(self) -> str:
        """How `inspect eval` names it: `<script>@<name>`, or the name alone."""
        return f"{self.script}@{self.name}" if self.script is not None else self.name


@dataclass(frozen=True)
class EvaluationCell:
    """One line of the evaluation matrix: evaluate `run` on `tasks` at `epochs`."""

    run: str
    tasks: tuple[str, ...]
    epochs: tuple[int, ...]
    vis_label: str | None = None


@dataclass(frozen=True)
class EvaluationSettings:
    """cruijff_kit's experiment-wide evaluation settings (`evaluation:` beside tasks and matrix)."""

    scorers: tuple[Mapping[str, object], ...] = ()
    temperature: float | None = None
    do_sample: bool | None = None
    seed: int | None = None
    max_tokens: int | None = None
    max_connections: int | None = None
    system_prompt: str | None = None
    assistant_prefix: str | None = None
    # Fields of the compute preset evaluation jobs change, as a run's `compute` does.
    compute: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Experiment:
    name: str
    source: str  # where it was read from, for messages
    runs: tuple[Run, ...]
    directory: Path | None = None  # a scaffolded experiment's directory, when known
    controls: Mapping[str, object] = field(default_factory=dict)
    evaluation_tasks: tuple[EvaluationTask, ...] = ()
    evaluation_matrix: tuple[EvaluationCell, ...] = ()
    evaluation_settings: EvaluationSettings = field(default_factory=EvaluationSettings)
    # Base models by name (`models.base`), and the training data (`data.training.path`).
    base_models: Mapping[str, Path] = field(default_factory=dict)
    training_data: Path | None = None
    # The summary's fields that ttlaunch does not use (documentation, other tools' settings).
    not_used: tuple[str, ...] = ()

    @property
    def fine_tuned(self) -> tuple[Run, ...]:
        return tuple(run for run in self.runs if run.type is RunType.FINE_TUNED)

    def evaluation_task(self, name: str) -> EvaluationTask:
        """The named task (a matrix may name tasks the summary does not describe: registry names)."""
        return next((task for task in self.evaluation_tasks if task.name == name), EvaluationTask(name))

    def run(self, name: str) -> Run:
        run = self._runs_by_name.get(name)
        if run is None:
            raise KeyError(name)
        return run

    @cached_property
    def _runs_by_name(self) -> dict[str, Run]:
        """Runs by their name (unique: parse_experiment refuses a second one). A lookup per
        job made a 10,000-run launch's planning quadratic."""
        return {run.name: run for run in self.runs}

    def given_model(self, run: Run) -> Path:
        """The model a run that does not train here is evaluated on: an eval-only run's
        `checkpoint_path`, a control's base model (`models.base`, by the run's `model`).
        (parse_experiment has checked that the runs evaluated have one.)"""
        path = run.checkpoint_path if run.type is RunType.EVAL_ONLY else self.base_models.get(run.model or "")
        if path is None:
            raise KeyError(run.name)
        return path


def check_safe_name(name: object, source: str, field_name: str) -> str:
    """A name used as a path component and a SLURM job name: [A-Za-z0-9._-]+, not '.' or '..'."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or name in {".", ".."}:
        raise InputError(
            source, field_name, f"{name!r} is not a safe name (use letters, digits, '.', '_' and '-'; not '.' or '..')"
        )
    return name


def load_summary_file(path: Path) -> Experiment:
    """Read and validate a summary file (an experiment_summary.yaml, or any summary YAML)."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(source, "(file)", f"cannot be read: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise InputError(source, where, f"malformed YAML: {getattr(err, 'problem', None) or err}") from None
    default_dir = path.parent if path.name == SUMMARY_FILE_NAME else None
    return parse_experiment(data, source, default_directory=default_dir, script_base=path.parent)


def parse_experiment(
    data: object, source: str, default_directory: Path | None = None, script_base: Path | None = None
) -> Experiment:
    """Validate a summary mapping into an Experiment; raise InputError naming the field.
    `script_base`: where the summary is, for its task scripts' relative paths (else its directory)."""
    if not isinstance(data, Mapping):
        raise InputError(source, "(top level)", "must be a mapping with 'experiment' and 'runs'")
    unused = not_used(data, source)
    header = data.get("experiment")
    if not isinstance(header, Mapping):
        raise InputError(source, "experiment", "missing: expected a mapping with at least 'name'")
    name = check_safe_name(header.get("name"), source, "experiment.name")
    directory = _directory(header, source) or default_directory
    runs = _runs(data.get("runs"), source)
    controls = data.get("controls") or {}
    if not isinstance(controls, Mapping):
        raise InputError(source, "controls", "must be a mapping of parameter names to values")
    tasks, matrix = _evaluation(data.get("evaluation"), {run.name for run in runs}, source, script_base or directory)
    base_models = _base_models(data.get("models"), source)
    training_data = _training_data(data.get("data"), source)
    _check_evaluated_models(runs, matrix, base_models, source)
    if training_data is None and any(task.dataset == "same" for task in tasks):
        where = next(index for index, task in enumerate(tasks) if task.dataset == "same")
        raise InputError(source, f"evaluation.tasks[{where}].dataset", "`same` is the training data: name it in data.training.path")
    return Experiment(
        name=name,
        source=source,
        runs=runs,
        directory=directory,
        controls=dict(controls),
        evaluation_tasks=tasks,
        evaluation_matrix=matrix,
        evaluation_settings=_evaluation_settings(data.get("evaluation"), source),
        base_models=base_models,
        training_data=training_data,
        not_used=tuple(unused),
    )


def _check_evaluated_models(
    runs: tuple[Run, ...], matrix: tuple[EvaluationCell, ...], base_models: Mapping[str, Path], source: str
) -> None:
    """A control or eval-only run the matrix evaluates needs a model: its base model in
    `models.base` (a control), its `checkpoint_path` (an eval-only run)."""
    by_name = {run.name: (index, run) for index, run in enumerate(runs)}
    for cell in matrix:
        index, run = by_name[cell.run]
        if not cell.tasks or run.type is RunType.FINE_TUNED:
            continue
        if run.type is RunType.EVAL_ONLY and run.checkpoint_path is None:
            raise InputError(source, f"runs[{index}].parameters.checkpoint_path", "an eval-only run is evaluated on it: name it")
        if run.type is RunType.CONTROL and run.model not in base_models:
            known = ", ".join(base_models) or "none"
            raise InputError(
                source, f"runs[{index}].model",
                f"{run.model!r} is not in models.base (known: {known}): a control is evaluated on its base model",
            )


def _path(value: object, source: str, where: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise InputError(source, where, f"{value!r} is not a path")
    return Path(value).expanduser()


def _base_models(section: object, source: str) -> dict[str, Path]:
    """`models.base`: each base model's name and its directory."""
    entries = section.get("base") if isinstance(section, Mapping) else None
    if section is not None and not isinstance(entries, list):
        raise InputError(source, "models.base", "must be a list of {name, path}")
    models: dict[str, Path] = {}
    for index, entry in enumerate(entries or []):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise InputError(source, f"models.base[{index}].name", "each base model needs a name")
        models[entry["name"]] = _path(entry.get("path"), source, f"models.base[{index}].path")
    return models


def _training_data(section: object, source: str) -> Path | None:
    training = section.get("training") if isinstance(section, Mapping) else None
    if not isinstance(training, Mapping) or training.get("path") is None:
        return None
    return _path(training["path"], source, "data.training.path")


# Experiment-wide evaluation settings and the type each must have.
_SETTING_TYPES: dict[str, tuple[type, ...]] = {
    "temperature": (int, float), "do_sample": (bool,), "seed": (int,), "max_tokens": (int,), "max_connections": (int,),
    "system_prompt": (str,), "assistant_prefix": (str,),
}


def _evaluation_settings(section: object, source: str) -> EvaluationSettings:
    if not isinstance(section, Mapping):
        return EvaluationSettings()
    values: dict[str, Any] = {}  # each checked against its _SETTING_TYPES just below
    for key, types in _SETTING_TYPES.items():
        value = section.get(key)
        if value is None:
            continue
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            raise InputError(source, f"evaluation.{key}", f"{value!r}: expected {' or '.join(t.__name__ for t in types)}")
        values[key] = value
    scorers = section.get("scorers") or []
    if not isinstance(scorers, list) or not all(isinstance(s, Mapping) and isinstance(s.get("name"), str) for s in scorers):
        raise InputError(source, "evaluation.scorers", "must be a list of {name, params}")
    compute = _compute(section.get("compute"), source, "evaluation.compute")
    return EvaluationSettings(scorers=tuple(dict(scorer) for scorer in scorers), compute=compute, **values)


def _compute(value: object, source: str, where: str) -> dict[str, object]:
    """A run's (or the evaluations') compute fields: a compute preset's names, or cruijff_kit's
    estimate (`time: "HH:MM:SS"`, `mem: "80G"`, `gpus`) in those names."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(source, where, "must be a mapping of compute preset fields")
    compute: dict[str, object] = {}
    for key, item in value.items():
        if key not in CRUIJFF_COMPUTE:
            compute[str(key)] = item
            continue
        target, read = CRUIJFF_COMPUTE[key]
        converted = read(str(item)) if read is not None else item
        if converted is None:
            raise InputError(source, f"{where}.{key}", f"{item!r} is not a value sbatch --{key} takes")
        compute[target] = converted
    return compute


def _task(entry: object, source: str, where: str, script_base: Path | None) -> EvaluationTask:
    """One task: a name, or {name, script, args, and settings such as system_prompt}. A
    script that does not exist is an error now, before anything is submitted."""
    if not isinstance(entry, Mapping):
        return EvaluationTask(check_safe_name(entry, source, f"{where}.name"))
    name = check_safe_name(entry.get("name"), source, f"{where}.name")
    script = None
    if entry.get("script") is not None:
        text = entry["script"]
        if not isinstance(text, str) or not text.strip():
            raise InputError(source, f"{where}.script", f"{text!r} is not a path to an inspect task file")
        script = Path(text).expanduser()
        if not script.is_absolute():
            script = (script_base or Path.cwd()) / script
        if not script.is_file():
            raise InputError(source, f"{where}.script", f"{script} does not exist")
    settings = {key: entry[key] for key in TASK_SETTINGS if entry.get(key) is not None}
    args = entry.get("args") or {}
    texts = {key: entry.get(key) for key in ("dataset", "prompt", "assistant_prefix")}
    for key, value in [*settings.items(), *(args.items() if isinstance(args, Mapping) else [("args", args)])]:
        if not isinstance(value, (str, int, float, bool)):
            raise InputError(source, f"{where}.{key}", f"{value!r}: expected one value (a number or a word)")
    for key, value in texts.items():
        if value is not None and not isinstance(value, str):
            raise InputError(source, f"{where}.{key}", f"{value!r}: expected text")
    return EvaluationTask(name, script.resolve() if script else None, settings, dict(args), **texts)


def _directory(header: Mapping[str, object], source: str) -> Path | None:
    for key in ("directory", "dir"):
        value = header.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise InputError(source, f"experiment.{key}", "must be a path")
        return Path(value).expanduser()
    return None


def _runs(entries: object, source: str) -> tuple[Run, ...]:
    if entries is None:
        raise InputError(source, "runs", "missing: expected a list of runs")
    if not isinstance(entries, list) or not entries:
        raise InputError(source, "runs", "must be a non-empty list of runs")
    runs: list[Run] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"runs[{index}]"
        if not isinstance(entry, Mapping):
            raise InputError(source, where, "must be a mapping with 'name' and 'type'")
        name = check_safe_name(entry.get("name"), source, f"{where}.name")
        if name in seen:
            raise InputError(source, f"{where}.name", f"duplicate run name {name!r}")
        seen.add(name)
        run_type = _run_type(entry.get("type"), source, f"{where}.type")
        model = entry.get("model")
        if model is not None and not isinstance(model, str):
            raise InputError(source, f"{where}.model", "must be a model name")
        compute = _compute(entry.get("compute"), source, f"{where}.compute")
        runs.append(
            Run(name=name, type=run_type, parameters=_parameters(entry, source, where), model=model, compute=dict(compute))
        )
    return tuple(runs)


def _run_type(value: object, source: str, field_name: str) -> RunType:
    valid = ", ".join(member.value for member in RunType)
    if not isinstance(value, str):
        raise InputError(source, field_name, f"missing or not a string: expected one of {valid}")
    try:
        return RunType.parse(value)
    except ValueError:
        raise InputError(source, field_name, f"unknown run type {value!r}: expected one of {valid}") from None


def _parameters(entry: Mapping[str, object], source: str, where: str) -> dict[str, Scalar]:
    nested = entry.get("parameters")
    if nested is None:
        nested = {}
    if not isinstance(nested, Mapping):
        raise InputError(source, f"{where}.parameters", "must be a mapping of parameter names to values")
    flat = {key: value for key, value in entry.items() if key not in _RUN_KEYS}
    parameters: dict[str, Scalar] = {}
    tagged = [(key, value, f"{where}.parameters.{key}") for key, value in nested.items()]
    tagged += [(key, value, f"{where}.{key}") for key, value in flat.items()]
    for key, value, field_name in tagged:
        if key in parameters:
            raise InputError(source, field_name, "given twice (flat and under 'parameters')")
        if not isinstance(value, (str, int, float, bool)):
            raise InputError(source, field_name, f"must be a single value, not {type(value).__name__}")
        parameters[str(key)] = value
    return parameters


def _evaluation(
    section: object, run_names: set[str], source: str, script_base: Path | None
) -> tuple[tuple[EvaluationTask, ...], tuple[EvaluationCell, ...]]:
    if section is None:
        return (), ()
    if not isinstance(section, Mapping):
        raise InputError(source, "evaluation", "must be a mapping with 'tasks' and 'matrix'")
    tasks = tuple(_task(task, source, f"evaluation.tasks[{index}]", script_base) for index, task in enumerate(section.get("tasks") or []))
    names = [task.name for task in tasks]
    cells: list[EvaluationCell] = []
    for index, cell in enumerate(section.get("matrix") or []):
        where = f"evaluation.matrix[{index}]"
        if not isinstance(cell, Mapping):
            raise InputError(source, where, "must be a mapping with 'run', 'tasks' and 'epochs'")
        run = cell.get("run")
        if run not in run_names:
            raise InputError(source, f"{where}.run", f"{run!r} is not a run of this experiment")
        cell_tasks = tuple(cell.get("tasks") or ())
        unknown = [task for task in cell_tasks if names and task not in names]
        if unknown:
            raise InputError(source, f"{where}.tasks", f"unknown task(s) {unknown}: not in evaluation.tasks")
        epochs = cell.get("epochs")
        if epochs is None:  # control runs: no epochs to evaluate
            epochs = []
        if not isinstance(epochs, list) or not all(isinstance(epoch, int) for epoch in epochs):
            raise InputError(source, f"{where}.epochs", "must be a list of epoch numbers (or null)")
        label = cell.get("vis_label")
        if label is not None and not isinstance(label, str):
            raise InputError(source, f"{where}.vis_label", f"{label!r}: expected a label")
        cells.append(EvaluationCell(run=str(run), tasks=cell_tasks, epochs=tuple(epochs), vis_label=label))
    return tuple(tasks), tuple(cells)
