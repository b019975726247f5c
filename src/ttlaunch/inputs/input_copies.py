"""The copies of a run's files that its jobs run from, taken when they are submitted.

A queued job starts hours or days after it was submitted; what it reads then must be what
was asked then. At submission (ttlaunch.submit.submitter) each file a job of the run reads
as it starts (its scaffold's finetune.yaml and finetune.slurm, a command payload's files in
the experiment's dir) is copied to `<job dir>/inputs/<its path in the experiment's dir>`.
The job (ttlaunch.job.task) reads the copies, and so does every requeued attempt.

The sweep's evaluation task files are copied once, by the sweep's first launch, to
`<sweep dir>/evaluation_tasks/<task>/`: every evaluation of the sweep, at every epoch,
runs the same task, so their scores compare.

A file that is run (a command's script, an inspect task file) may read what lies beside it
(a module it imports, a data file inspect's loader finds from the task's dir): its copy sits
among links to what sat beside the original.
"""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path
from typing import Mapping

from ttlaunch.base.errors import InputError

INPUTS_DIR = "inputs"
TASKS_DIR = "evaluation_tasks"


def copies_of(job_dir: Path) -> Path | None:
    """The copies a job of this dir was submitted with; None for a job submitted without
    (by a ttlaunch before it took them)."""
    folder = job_dir / INPUTS_DIR
    return folder if folder.is_dir() else None


def copy_of(path: Path, root: Path, copies: Path | None) -> Path:
    """Where a job reads `path`, a file of the experiment (whose dir is `root`): in the job's
    `copies`, when it has them (a file that was not there at submission is not there for
    the job either), else the file itself."""
    if copies is None or not path.is_relative_to(root):
        return path
    return copies / path.relative_to(root)


def _copy(path: Path, target: Path, name: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copy2(path, target)  # the mode too: a script stays executable
    except FileNotFoundError:
        raise InputError(str(path), name, "vanished before submission: the job would have nothing to read") from None


def _link_neighbours(original: Path, copy: Path) -> None:
    """Links beside `copy` to what lies beside `original` (but what is copied there too)."""
    for neighbour in original.parent.iterdir():
        link = copy.parent / neighbour.name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(neighbour)


def freeze(job_dir: Path, files: Mapping[str, Path], run: frozenset[str] = frozenset()) -> None:
    """Copy `files` (by name: their path in the experiment's dir) into the job dir's copies,
    in place of an earlier submission's. `run`: the names of those the job runs (their
    neighbours are linked). Written aside and then moved in, so a job never sees half of them."""
    folder, staging = job_dir / INPUTS_DIR, job_dir / f".{INPUTS_DIR}.new"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, path in files.items():
        _copy(path, staging / name, name)
    for name in run & files.keys():
        _link_neighbours(files[name], staging / name)
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)


def task_copy(sweep_dir: Path, task_name: str, script: Path) -> Path:
    """Where the sweep's copy of an evaluation task's file is."""
    return sweep_dir / TASKS_DIR / task_name / script.name


def freeze_task(sweep_dir: Path, task_name: str, script: Path) -> str | None:
    """Copy an evaluation task's file for the sweep, once. When the sweep has its copy
    already: None, or what to tell the user if the file changed since it was taken."""
    copy = task_copy(sweep_dir, task_name, script)
    if copy.is_file():
        if script.is_file() and filecmp.cmp(script, copy, shallow=False):
            return None
        return (
            f"evaluation task {task_name}: {script} changed since this sweep copied it; its evaluations go on "
            f"with the copy ({copy}), so that they compare. Delete {copy.parent} to evaluate the rest with the edit"
        )
    _copy(script, copy, f"evaluation.tasks.{task_name}.script")
    _link_neighbours(script, copy)
    return None
