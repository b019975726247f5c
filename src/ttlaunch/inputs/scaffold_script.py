"""A scaffolded run's batch script (cruijff_kit's `finetune.slurm`), read for what it decides:
the recipe its `tune run` line names, what it does before and after training, and the
resources and options of its `#SBATCH` lines.

ttlaunch runs the script itself, in the run's dir as `sbatch finetune.slurm` would, with its
`tune run ...` command replaced by the one ttlaunch builds (the same recipe and config, with
ttlaunch's overrides and resume): so the environment set up before it (modules, conda) is the
training's, and the steps after it see its exit status as `$?`, as the script expects.

Pure: text in, a ScaffoldScript or an InputError out.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from ttlaunch.base.errors import InputError
from ttlaunch.inputs.sbatch_values import memory_gb, time_minutes

SCRIPT_NAME = "finetune.slurm"
# sbatch's one-letter options, by their long names.
_SHORT = {"t": "time", "N": "nodes", "n": "ntasks", "c": "cpus-per-task", "p": "partition", "A": "account",
          "o": "output", "e": "error", "J": "job-name", "q": "qos", "C": "constraint", "G": "gpus"}
# #SBATCH options that are a compute preset field, and how each is read.
_COMPUTE: dict[str, tuple[str, Callable[[str], object]]] = {
    "time": ("timeout_min", time_minutes),
    "mem": ("mem_gb", memory_gb),
    "cpus-per-task": ("cpus_per_task", int),
    "nodes": ("nodes", int),
    "ntasks-per-node": ("tasks_per_node", int),
    "partition": ("partition", str),
    "account": ("account", str),
    "qos": ("qos", str),
    "constraint": ("constraint", str),
}
# Options ttlaunch decides itself: the job's name is its run's; its log goes where ttlaunch
# reads it (and also where --output says: see `wrapper`); one job per run, not an array.
_OWN = {"job-name", "output", "error", "array", "ntasks"}
_GPU = re.compile(r"^gpu(?::([^:,]+))?:(\d+)$")
# `tune run [--nproc_per_node N] <recipe> ...`, the training command of the script.
_TUNE_RUN = re.compile(r"^\s*tune\s+run\s")


@dataclass(frozen=True)
class ScaffoldScript:
    path: Path
    # Compute preset fields its #SBATCH lines set (time, memory, CPUs, GPUs, partition, ...).
    compute: Mapping[str, object] = field(default_factory=dict)
    # Its other sbatch options (mail_type, mail_user, ...), as additional_parameters.
    additional: Mapping[str, str] = field(default_factory=dict)
    # Where its --output asks the job's log to go (%j: the job id).
    output: str | None = None
    # The `tune run` command's recipe, and the key=value overrides it adds after its config.
    recipe: str | None = None
    overrides: tuple[str, ...] = ()
    # The script's text before and after the `tune run` command.
    before: str = ""
    after: str = ""

    def wrapper(self, run_name: str) -> str:
        """The script as ttlaunch runs it: its own lines, with `"$@"` (ttlaunch's training
        command) in place of its `tune run`, its output also copied where --output says."""
        lines = []
        if self.output is not None:  # from the start, as sbatch would
            parts = self.output.replace("%x", run_name).split("%j")
            target = '"${SLURM_JOB_ID:-local}"'.join(shlex.quote(part) if part else "" for part in parts)
            lines += [f'mkdir -p "$(dirname {target})"', f"exec > >(tee -a {target}) 2> >(tee -a {target} >&2)"]
        return "\n".join([*lines, self.before.rstrip("\n"), '"$@"', self.after])


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, line) with backslash continuations joined."""
    lines: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        start, joined = pending if pending is not None else (number, "")
        joined += line
        if line.endswith("\\"):
            pending = (start, joined[:-1] + " ")
            continue
        pending = None
        lines.append((start, joined))
    if pending is not None:
        lines.append(pending)
    return lines


def _directives(text: str, source: str) -> list[tuple[str, str, int]]:
    """(long option, value, line) of each `#SBATCH` line (`##SBATCH` is commented out)."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.startswith("#SBATCH"):
            continue
        try:
            words = shlex.split(line[len("#SBATCH"):], comments=True)
        except ValueError as err:
            raise InputError(source, f"line {number}", f"cannot read #SBATCH line: {err}") from None
        index = 0
        while index < len(words):
            word = words[index]
            if word.startswith("--"):
                name, _, value = word[2:].partition("=")
                if not _ and index + 1 < len(words) and not words[index + 1].startswith("-"):
                    value, index = words[index + 1], index + 1
            elif word.startswith("-") and len(word) >= 2 and word[1] in _SHORT:
                name, value = _SHORT[word[1]], word[2:]
                if not value and index + 1 < len(words):
                    value, index = words[index + 1], index + 1
            else:
                raise InputError(source, f"line {number}", f"{word!r} is not an sbatch option")
            found.append((name, value, number))
            index += 1
    return found


def _resources(directives: list[tuple[str, str, int]], source: str) -> tuple[dict[str, object], dict[str, str], str | None]:
    compute: dict[str, object] = {}
    additional: dict[str, str] = {}
    output = None
    for name, value, number in directives:
        where = f"line {number}: --{name}"
        if name in _COMPUTE:
            target, read = _COMPUTE[name]
            try:
                converted = read(value)
            except ValueError:
                converted = None
            if converted is None:
                raise InputError(source, where, f"{value!r} is not a value sbatch takes")
            compute[target] = converted
        elif name == "gres":
            entries = value.split(",")
            gpu = [match for entry in entries for match in [_GPU.match(entry)] if match]
            if gpu:
                compute["gpus_per_node"] = int(gpu[0].group(2))
                if gpu[0].group(1):
                    compute["gpu_type"] = gpu[0].group(1)
            others = [entry for entry in entries if not _GPU.match(entry)]
            if others:
                compute["gres"] = ",".join(others)
        elif name == "output":
            output = value
        elif name in _OWN:
            continue
        elif name == "mail-type" and "mail_type" in additional:
            additional["mail_type"] = f"{additional['mail_type']},{value}"  # several lines: all of them
        else:
            additional[name.replace("-", "_")] = value
    return compute, additional, output


def parse_script(text: str, path: Path) -> ScaffoldScript:
    """The script's resources, recipe and the lines around its `tune run` command."""
    source = str(path)
    compute, additional, output = _resources(_directives(text, source), source)
    lines = text.splitlines(keepends=True)
    for number, line in _logical_lines(text):
        if not _TUNE_RUN.match(line):
            continue
        recipe, overrides = _tune_arguments(line, source, number)
        last = number - 1  # the command's physical lines: up to the first without a continuation
        while last + 1 < len(lines) and lines[last].rstrip("\n").endswith("\\"):
            last += 1
        before, after = "".join(lines[: number - 1]), "".join(lines[last + 1:])
        return ScaffoldScript(path, compute, additional, output, recipe, overrides, before, after)
    raise InputError(source, "tune run", "no `tune run <recipe> --config <file>` command: ttlaunch cannot tell how the run trains")


def _tune_arguments(line: str, source: str, number: int) -> tuple[str, tuple[str, ...]]:
    try:
        words = shlex.split(line, comments=True)[2:]
    except ValueError as err:
        raise InputError(source, f"line {number}", f"cannot read the tune run command: {err}") from None
    recipe = None
    overrides: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--config":
            index += 2
            continue
        if word.startswith("--"):  # torchrun's options (--nproc_per_node 2): ttlaunch sets them by the GPU count
            index += 1 if "=" in word else 2
            continue
        if recipe is None:
            recipe = word
        else:
            overrides.append(word)
        index += 1
    if recipe is None:
        raise InputError(source, f"line {number}", "the tune run command names no recipe")
    return recipe, tuple(overrides)


def read_script(path: Path) -> ScaffoldScript | None:
    """The run's batch script, when it has one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as err:
        raise InputError(str(path), "(file)", f"cannot be read: {err.strerror}") from None
    return parse_script(text, path)
