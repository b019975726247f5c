"""`hydra.launcher.snapshot=true`: an app's jobs import its code as it was at launch.

A job waiting in the queue imports the app when it starts; an edit made meanwhile would run
in it. With the snapshot, the launch copies the files git tracks in the app's repository (as
they are in the working tree, uncommitted edits included) to
`<sweep dir>/snapshots/launch-<n>/`, and each job puts the copy's counterparts of the
launch's import path first on its own (ttlaunch.job.job_callable.PrePickledJob) before it
loads the app. Like submitit's RsyncSnapshot, without rsync; unlike it, jobs keep their
working directory (the app's relative paths, Hydra's sweep dir among them, mean what they
meant at launch).

Files git does not track are not copied (a job that imports one finds it where it is, as it
is then): the launch lists them in one line.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ttlaunch.base.errors import InputError
from ttlaunch.records.provenance import git, work_tree

SNAPSHOTS_DIR = "snapshots"
GIT_TIMEOUT_S = 60  # listing a large repository's files


@dataclass(frozen=True)
class CodeSnapshot:
    repository: Path  # the app's git work tree
    directory: Path  # its copy
    files: int
    untracked: tuple[str, ...]  # not copied

    def import_paths(self, search_path: Sequence[str]) -> tuple[str, ...]:
        """The copy's counterparts of the entries of `search_path` (sys.path at launch) that
        lie in the repository, in their order: what a job imports from first."""
        paths: list[str] = []
        for entry in search_path:
            path = Path(entry or os.getcwd()).resolve()
            if path.is_relative_to(self.repository):
                counterpart = str(self.directory / path.relative_to(self.repository))
                if counterpart not in paths:
                    paths.append(counterpart)
        return tuple(paths)


def repository_of(code_dir: Path) -> Path:
    """The git work tree the app's code is in; InputError when there is none (nothing says
    which files are the code)."""
    repository, reason = work_tree(code_dir)
    if repository is None:
        raise InputError(
            "hydra.launcher", "snapshot",
            f"{code_dir} (the app's code) is {reason}: the snapshot copies the files git tracks. "
            "Put the app in git, or launch without hydra.launcher.snapshot",
        )
    return repository


def take_snapshot(repository: Path, sweep_dir: Path, name: str) -> CodeSnapshot:
    """Copy the repository's tracked files (links as links) to the sweep's snapshot `name`
    (`launch-<n>`, after the launch's number in provenance.json)."""
    directory = sweep_dir / SNAPSHOTS_DIR / name
    tracked = [name for name in git(repository, "ls-files", "-z", timeout_s=GIT_TIMEOUT_S).split("\0") if name]
    others = git(repository, "ls-files", "--others", "--exclude-standard", "-z", timeout_s=GIT_TIMEOUT_S)
    untracked = tuple(name for name in others.split("\0") if name)
    staging = directory.with_name(f".{directory.name}.new")
    shutil.rmtree(staging, ignore_errors=True)
    copied = 0
    for name in tracked:
        source = repository / name
        if not (source.is_file() or source.is_symlink()):  # deleted in the working tree; a submodule
            continue
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
        copied += 1
    staging.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)
    return CodeSnapshot(repository, directory, copied, untracked)


def untracked_line(snapshot: CodeSnapshot, shown: int = 10) -> str | None:
    """The launch's one line on the files the snapshot left out; None when there are none."""
    if not snapshot.untracked:
        return None
    names = ", ".join(snapshot.untracked[:shown]) + (f" and {len(snapshot.untracked) - shown} more" if len(snapshot.untracked) > shown else "")
    return (
        f"snapshot of {snapshot.repository}: {len(snapshot.untracked)} file(s) git does not track were not copied: "
        f"{names}. A job that reads or imports them gets them as they are when it starts (git add them to include them)"
    )
