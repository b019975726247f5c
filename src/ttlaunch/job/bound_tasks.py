"""One `inspect eval` of all the tasks of one checkpoint: one model load for them all.

inspect takes several tasks on one command line, but its task arguments (-T) once for all
of them, and stops them all when one cannot be made. So the tasks run from a task file
written in the job's dir, in which each is bound to its own arguments (cruijff_kit's: each
its dataset and eval.yaml): `inspect eval <job dir>/tasks.py@t1 <job dir>/tasks.py@t2`. A
task that cannot be made fails alone, its log saying why; inspect names each task's log
after the summary's task, where its scores are read from (ttlaunch.monitor.scores).
Registry tasks (no task file) run as they are, their arguments alike.

Runs in the job (ttlaunch.job.plan_from_inputs); `bound_task` in inspect's process.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import yaml

from ttlaunch.inputs.payload_command import PayloadCommand

if TYPE_CHECKING:
    from inspect_ai import Task

BOUND_TASKS_NAME = "tasks.py"


def _task_args(options: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the -T options, in pairs; the other options)."""
    task_args: list[str] = []
    others: list[str] = []
    index = 0
    while index < len(options):
        if options[index] == "-T" and index + 1 < len(options):
            task_args += options[index:index + 2]
            index += 2
        else:
            others.append(options[index])
            index += 1
    return task_args, others


def one_inspect_run(
    commands: Sequence[tuple[str, Path | None, PayloadCommand]], task_position: int, job_dir: Path
) -> PayloadCommand:
    """The one command that runs each task's `inspect eval` (name, script or None for a
    registry task, its command with its task at `task_position` of the argv) together. The
    planning (ttlaunch.inputs.evaluation_plan) grouped only tasks whose other options agree."""
    first = commands[0][2]
    head = first.argv[:task_position]
    parts = [_task_args(command.argv[task_position + 1:]) for _, _, command in commands]
    shared = parts[0][1]
    for (name, _, command), (_, others) in zip(commands, parts):
        if command.argv[:task_position] != head or others != shared:
            raise ValueError(f"evaluation task {name}'s inspect options differ from {commands[0][0]}'s: it needs a job of its own")
    if any(script is None for _, script, _ in commands):  # a registry task: named as it is, its arguments shared
        if any(task_args != parts[0][0] for task_args, _ in parts):
            raise ValueError(f"evaluation task {commands[0][0]}'s job has a registry task with arguments of its own")
        references = tuple(command.argv[task_position] for _, _, command in commands)
        return PayloadCommand(argv=(*head, *references, *shared, *parts[0][0]), env=first.env, output_dir=first.output_dir)
    bound = job_dir / BOUND_TASKS_NAME
    job_dir.mkdir(parents=True, exist_ok=True)
    bound.write_text(_bound_file([
        (name, script, _parsed(task_args)) for (name, script, _), (task_args, _) in zip(commands, parts) if script is not None
    ]), encoding="utf-8")
    references = tuple(f"{bound}@{name}" for name, _, _ in commands)
    return PayloadCommand(argv=(*head, *references, *shared), env=first.env, output_dir=first.output_dir)


def _parsed(task_args: Sequence[str]) -> dict[str, object]:
    """-T `key=value` pairs as inspect reads them: each value as YAML."""
    pairs = (item.partition("=") for item in task_args[1::2])
    return {key: yaml.safe_load(value) for key, _, value in pairs}


def _bound_file(tasks: Sequence[tuple[str, Path, Mapping[str, object]]]) -> str:
    """A task file with one task per summary task, named as it, bound to its arguments."""
    lines = [
        '"""Written by ttlaunch: this job\'s evaluation tasks, each with its own arguments, for one `inspect eval`."""',
        "", "from inspect_ai import task", "", "from ttlaunch.job.bound_tasks import bound_task", "",
    ]
    for index, (name, script, args) in enumerate(tasks):
        lines += [
            "", f"@task(name={name!r})", f"def task_{index}():",
            f"    return bound_task({str(script)!r}, {name!r}, {dict(args)!r})", "",
        ]
    return "\n".join(lines)


def bound_task(script: str, name: str, args: Mapping[str, object]) -> Task:
    """The task `name` of the task file `script`, made with `args` (in inspect's process), or
    one that fails saying why it could not be made. The file's dir is on the import path
    while it loads, as inspect has it for its own."""
    path = Path(script)
    spec = importlib.util.spec_from_file_location(f"ttlaunch_bound_{path.stem}_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the evaluation task file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    try:
        function = getattr(module, name)
        task: Task = function(**_accepted(function, name, args))
    except Exception as err:  # noqa: BLE001 - it is the task's failure, not the other tasks'
        return _failing(name, err)
    return task


def _accepted(function: Callable[..., object], name: str, args: Mapping[str, object]) -> dict[str, object]:
    """The arguments the task function takes, as inspect gives a task only those (saying which
    it leaves out): the shared ones of the summary may not all be every task's."""
    parameters = inspect.signature(function).parameters.values()
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return dict(args)
    names = {parameter.name for parameter in parameters}
    unused = sorted(set(args) - names)
    if unused:
        print(f"ttlaunch: evaluation task {name} takes no {', '.join(unused)}: left out", file=sys.stderr)
    return {key: value for key, value in args.items() if key in names}


def _failing(name: str, error: Exception) -> Task:
    """A task that fails with `error` when it runs: its log says why, the others run."""
    # inspect-ai (an extra) only in inspect's process, where this runs.
    from inspect_ai import Task
    from inspect_ai.dataset import Sample
    from inspect_ai.solver import Generate, TaskState, solver

    @solver
    def fail():  # type: ignore[no-untyped-def]
        async def solve(state: TaskState, generate: Generate) -> TaskState:
            raise RuntimeError(f"evaluation task {name} could not be made: {error!r}")

        return solve

    return Task(dataset=[Sample(input=name)], solver=[fail()], name=name)
