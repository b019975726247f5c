"""Evaluations of the experiment summary's evaluation matrix (run x task x epoch): which
there are, how each job is named, and the command it runs (pure, but for the files its
checkpoint and tokenizer are looked up in).

All the tasks the matrix asks of one checkpoint run in one job, with one model load (one
`inspect eval` of several tasks), named `<training job>/epoch<N>` (its dir nests under the
training job's: the run's, or `r8__seed-1` in a command-line sweep), or `<run>/model` for a
model the sweep does not train. Tasks whose generation settings differ, or that run in
another shape (cruijff_kit's or inspect's own), cannot share one `inspect eval`: they get a
job each, as every task does with `evaluation.one_job_per_task=true` or a command other than
inspect's (`<training job>/<task>/epoch<N>`, `<run>/<task>`). The monitor submits a job
once its epoch's checkpoint is complete (ttlaunch.monitor.evaluations); in the job, its
command runs instead of the training payload (ttlaunch.job.task).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ttlaunch.base import environment
from ttlaunch.base.errors import InputError
from ttlaunch.inputs import templates
from ttlaunch.inputs.payload_command import PayloadCommand
from ttlaunch.inputs.schema import EvaluationConfig
from ttlaunch.inputs.summary import TASK_SETTINGS, EvaluationSettings, EvaluationTask, Experiment, Run, RunType

# The name part of the job that evaluates a model the sweep does not train, all its tasks.
GIVEN_MODEL = "model"


def evaluation_job_name(evaluated_job: str, tasks: Sequence[str], epoch: int | None, named_by_task: bool = False) -> str:
    """An evaluation job's name, its dir under the sweep's: `<training job>/epoch<N>` (or
    `<run>/model` for a model this sweep does not train: a control's base model, an eval-only
    run's checkpoint); named by its (first) task, `<training job>/<task>/epoch<N>` (`<run>/<task>`)."""
    middle = [tasks[0]] if named_by_task else []
    last = [f"epoch{epoch}"] if epoch is not None else ([] if middle else [GIVEN_MODEL])
    return "/".join([evaluated_job, *middle, *last])


def evaluated(job_name: str) -> tuple[str, int | None] | None:
    """(training job or run, epoch) of an evaluation job's name, either layout (epoch None: a
    run's model this sweep does not train); None for a training job's name. (Job and task
    names have no '/'.)"""
    parts = job_name.split("/")
    if len(parts) < 2:
        return None
    last = parts[-1]
    epoch = int(last[5:]) if last.startswith("epoch") and last[5:].isdigit() else None
    return parts[0], epoch


# The item of evaluation.command that names the task: where one `inspect eval` names all of a job's.
TASK_ITEM = "{task}"

# Set on an evaluation job's command line: which tasks and epoch it evaluates.
TARGET_KEY = "evaluation_target"


@dataclass(frozen=True)
class EvaluationTarget:
    run: str
    # The tasks of the summary evaluated, in one job (one model load), in the matrix's order.
    tasks: tuple[str, ...]
    # The epoch of this sweep's training evaluated; None: the run's model as the summary
    # gives it (a control's base model, an eval-only run's checkpoint), ready from the start.
    epoch: int | None
    # The sweep's job that trains the run, whose checkpoints are evaluated: the run's name, or
    # with a command-line sweep's suffix (`r8__seed-1`); None for a model the sweep does not train.
    training_job: str | None
    # Named by its first task, not for the checkpoint: one job per task, or a checkpoint's
    # second job (tasks that cannot share the first one's `inspect eval`).
    named_by_task: bool = False

    @property
    def job_name(self) -> str:
        return evaluation_job_name(self.training_job or self.run, self.tasks, self.epoch, self.named_by_task)

    @property
    def overrides(self) -> list[str]:
        epoch = "null" if self.epoch is None else self.epoch
        trained = [f"+{TARGET_KEY}.training_job={self.training_job}"] if self.training_job is not None else []
        tasks = ",".join(self.tasks)
        return [f"+{TARGET_KEY}.tasks=[{tasks}]", f"+{TARGET_KEY}.epoch={epoch}", *trained]


def _shared_inspect_run(task: EvaluationTask) -> tuple[object, ...]:
    """What tasks of one `inspect eval` must have alike: the shape they run in (cruijff_kit's
    tasks take their settings as task arguments), the generation settings inspect takes once
    for all its tasks, and a task file or none: tasks from files are each bound to their own
    arguments (ttlaunch.job.bound_tasks), registry tasks share theirs, so one with arguments
    of its own runs alone."""
    alone = task.name if task.script is None and (task.args or task.dataset is not None) else None
    return task.dataset is not None, task.script is None, tuple(sorted(task.settings.items())), alone


def planned_evaluations(
    experiment: Experiment, training_jobs: Mapping[str, str], config: EvaluationConfig = EvaluationConfig()
) -> list[EvaluationTarget]:
    """The matrix's evaluations for each job that trains a run in this sweep (job name -> run;
    a command-line sweep has several per run), at their epochs, and for the control and
    eval-only runs, once, on their model as it is: the comparison the fine-tuned runs are
    measured against. The tasks of one checkpoint share a job where one `inspect eval` can
    run them together (ttlaunch.job.bound_tasks), unless `config.one_job_per_task`."""
    given = {run.name for run in experiment.runs if run.type is not RunType.FINE_TUNED}
    grouped = runs_inspect(config.command) and TASK_ITEM in config.command and not config.one_job_per_task
    cells: dict[tuple[str, int | None, str | None], list[str]] = {}
    for cell in experiment.evaluation_matrix:
        for task in cell.tasks:
            if cell.run in given:
                cells.setdefault((cell.run, None, None), []).append(task)
            for training_job, trained in training_jobs.items():
                if trained == cell.run:
                    for cell_epoch in cell.epochs:
                        cells.setdefault((cell.run, cell_epoch, training_job), []).append(task)
    targets = []
    for (run, epoch, job), tasks in cells.items():
        if not grouped:
            targets += [EvaluationTarget(run, (task,), epoch, job, named_by_task=True) for task in dict.fromkeys(tasks)]
            continue
        shares: dict[tuple[object, ...], list[str]] = {}
        for task in dict.fromkeys(tasks):
            shares.setdefault(_shared_inspect_run(experiment.evaluation_task(task)), []).append(task)
        # The first share is named for the checkpoint; any other after its first task.
        for index, share in enumerate(shares.values()):
            targets.append(EvaluationTarget(run, tuple(share), epoch, job, named_by_task=index > 0))
    return targets


# What transformers loads a tokenizer's vocabulary from; a checkpoint without either takes
# the base model's.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")


def _values(
    config: EvaluationConfig, target: EvaluationTarget, run_output_dir: Path, job_dir: Path, task: EvaluationTask | None = None
) -> dict[str, str]:
    reference = task.reference if task is not None else target.tasks[0]
    epoch = str(target.epoch) if target.epoch is not None else ""
    values = {"run_name": target.run, "task": reference, "epoch": epoch, "run_output_dir": str(run_output_dir)}
    values["checkpoint"] = _render(config.checkpoint, values, "evaluation.checkpoint")
    values.update(output_dir=str(job_dir / "outputs"), job_dir=str(job_dir))
    return values


def _render(template: str, values: dict[str, str], where: str) -> str:
    try:
        return templates.render(template, values)
    except templates.TemplateError as err:
        raise InputError("ttlaunch.yaml", where, str(err)) from None


def runs_inspect(command: Sequence[str]) -> bool:
    """The evaluation command is inspect's (`inspect eval ...`): it takes inspect's options,
    and leaves an inspect log to read the scores from."""
    return list(command[:2]) == ["inspect", "eval"]


def _inspect_options(
    settings: Mapping[str, object], args: Mapping[str, object], checkpoint: Path, base_model_dir: Path | None
) -> tuple[str, ...]:
    options: list[str] = []
    for key, value in settings.items():
        options += [TASK_SETTINGS[key], str(value)]
    for key, value in args.items():
        options += ["-T", f"{key}={value}"]
    has_tokenizer = any((checkpoint / name).is_file() for name in TOKENIZER_FILES)
    if not has_tokenizer and base_model_dir is not None and any((base_model_dir / name).is_file() for name in TOKENIZER_FILES):
        options += ["-M", f"tokenizer_path={base_model_dir}"]
    return tuple(options)


# The file a cruijff_kit task reads its prompt, system prompt and scorers from (-T config_path),
# as cruijff_kit's setup_inspect.py writes it beside each evaluation.
EVAL_CONFIG_NAME = "eval.yaml"


def cruijff_evaluation(
    experiment: Experiment, run: Run, task: EvaluationTask, target: EvaluationTarget, config_dir: Path
) -> tuple[tuple[str, ...], dict[str, object]]:
    """The inspect options and the eval.yaml of a task in cruijff_kit's shape (one that names
    its `dataset`), derived from the summary as cruijff_kit's setup_inspect.py derives them:
    `data_path` (the task's dataset, or the training data for `same`), `config_path` (the
    prompt, system prompt and scorers, the task's over the run's over the controls'),
    `vis_label`, `use_chat_template` (from `dataset_type`), the generation settings."""
    settings = experiment.evaluation_settings
    controls = experiment.controls
    data_path = experiment.training_data if task.dataset == "same" else Path(str(task.dataset)).expanduser()
    assert data_path is not None, "parse_experiment requires data.training.path for `same`"
    prompt = task.prompt or run.parameters.get("prompt") or controls.get("prompt") or "{input}"
    shared_system_prompt = settings.system_prompt if settings.system_prompt is not None else controls.get("system_prompt", "")
    system_prompt = task.settings.get("system_prompt", shared_system_prompt)
    cell = next((cell for cell in experiment.evaluation_matrix if cell.run == run.name and task.name in cell.tasks), None)
    label = (cell.vis_label if cell is not None else None) or run.name
    config: dict[str, object] = {
        "task_name": task.name, "prompt": prompt, "system_prompt": system_prompt,
        "scorers": [dict(scorer) for scorer in settings.scorers], "epoch": target.epoch,
        "dataset_type": controls.get("dataset_type"), "vis_label": label,
    }
    args = {
        "data_path": str(data_path), "config_path": str(config_dir / EVAL_CONFIG_NAME), "vis_label": label,
        "use_chat_template": "false" if controls.get("dataset_type") == "text_completion" else "true",
    }
    max_tokens = task.settings.get("max_tokens", settings.max_tokens)
    if max_tokens is not None:
        args["max_tokens"] = str(max_tokens)
    if settings.do_sample and settings.temperature is not None:  # greedy decoding has no temperature
        args["temperature"] = str(settings.temperature)
    assistant_prefix = task.assistant_prefix or settings.assistant_prefix
    if assistant_prefix is not None:
        args["assistant_prefix"] = f'"{assistant_prefix}"'  # inspect reads -T values as YAML
    options: list[str] = []
    for key, value in args.items():
        options += ["-T", f"{key}={value}"]
    options += _sampling(bool(settings.do_sample))
    return (*options, *_run_options(settings)), config


def _sampling(do_sample: bool) -> list[str]:
    """inspect's Hugging Face option for sampling (false: greedy decoding)."""
    return ["-M", f"do_sample={'true' if do_sample else 'false'}"]


def _run_options(settings: EvaluationSettings) -> list[str]:
    """inspect's options for how the summary's evaluations run, whatever the task."""
    options: list[str] = []
    if settings.max_connections is not None:
        options += ["--max-connections", str(settings.max_connections)]
    if settings.seed is not None:
        options += ["--seed", str(settings.seed)]
    return options


def _shared_options(settings: EvaluationSettings) -> tuple[dict[str, object], list[str]]:
    """For a task in inspect's own shape: the summary's evaluation settings as TASK_SETTINGS
    (under the task's own), and its sampling (`do_sample: false`, greedy decoding: the same
    answer every time) and run options."""
    shared: dict[str, object] = {"max_tokens": settings.max_tokens, "system_prompt": settings.system_prompt}
    if settings.do_sample is not False:
        shared["temperature"] = settings.temperature
    options = _sampling(settings.do_sample) if settings.do_sample is not None else []
    return {key: value for key, value in shared.items() if value is not None}, [*options, *_run_options(settings)]


def checkpoint_of(config: EvaluationConfig, target: EvaluationTarget, run_output_dir: Path) -> Path:
    """The checkpoint the evaluation is of (evaluation.checkpoint: the run's epoch_N/)."""
    return Path(_values(config, target, run_output_dir, Path("."))["checkpoint"])


def own_caches(job_dir: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment that gives an evaluation job a cache dir of its own (XDG_CACHE_HOME),
    Hugging Face's home staying where it was. inspect keeps a task's hf_dataset in the
    user's cache dir, keyed by its arguments: evaluations of one task that start together
    would race on it (one reads the dir another is still writing, "neither a `Dataset`
    directory nor a `DatasetDict` directory")."""
    shared = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME", "~")).expanduser() / ".cache")
    return {"XDG_CACHE_HOME": str(job_dir / "cache"), "HF_HOME": environ.get("HF_HOME") or str(Path(shared) / "huggingface")}


def evaluation_command(
    config: EvaluationConfig, target: EvaluationTarget, run_output_dir: Path, job_dir: Path,
    task: EvaluationTask | None = None, base_model_dir: Path | None = None, run_settings: Mapping[str, object] = {},
    cruijff_options: Sequence[str] = (), checkpoint: Path | None = None, shared: EvaluationSettings = EvaluationSettings(),
) -> PayloadCommand:
    """The evaluation's argv and environment. For `inspect eval` (the default), the settings
    of the run (its summary's controls and parameters named in TASK_SETTINGS, such as
    system_prompt), of the summary's evaluation (`shared`: its max_tokens, sampling, seed)
    and of the task, each over the one before, and the task's arguments follow as
    inspect's options; a checkpoint without tokenizer files is given the base
    model's (`-M tokenizer_path=...`). `checkpoint`: the dir `{checkpoint}` names, when
    the model is loaded from another than evaluation.checkpoint's (ttlaunch.records.checkpoints.loadable)."""
    values = _values(config, target, run_output_dir, job_dir, task)
    if checkpoint is not None:
        values["checkpoint"] = str(checkpoint)
    argv = tuple(_render(item, values, "evaluation.command") for item in config.command)
    if runs_inspect(argv) and cruijff_options:  # a cruijff_kit task: its options are its own
        argv += (*cruijff_options, *_inspect_options({}, task.args if task else {}, Path(values["checkpoint"]), base_model_dir))
    elif runs_inspect(argv):
        summary_settings, options = _shared_options(shared)
        own = {key: value for key, value in run_settings.items() if key in TASK_SETTINGS}
        settings = {**own, **summary_settings, **(task.settings if task else {})}
        argv += (*_inspect_options(settings, task.args if task else {}, Path(values["checkpoint"]), base_model_dir), *options)
    env = {key: _render(str(value), values, f"evaluation.env.{key}") for key, value in config.env.items()}
    env.update(environment.job_variables(target.run, values["output_dir"], job_dir))
    return PayloadCommand(argv=argv, env=env, output_dir=job_dir / "outputs")
