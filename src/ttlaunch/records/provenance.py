"""What each launch of a sweep ran with: `<sweep dir>/provenance.json`, one entry appended per
launch, and beside it the launch's installed packages (`provenance/packages-<n>.txt`, as
`pip freeze` lists them) and the diff of each dirty git tree (`provenance/<label>-<n>.diff`).

An entry: when, where and by whom; the command line and the composed config; ttlaunch's
version, Python's and those of the libraries a run depends on; and for each code or
experiment directory, the git commit, branch and whether the tree was dirty (or that it is
not in git: said, not an error). summary.md names the commit (ttlaunch.records.sweep_summary).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import platform
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Mapping, Sequence

from ttlaunch import __version__
from ttlaunch.base.files import write_atomically
from ttlaunch.base.times import timestamp

PROVENANCE_NAME = "provenance.json"
PROVENANCE_DIR = "provenance"
# The libraries whose versions decide what a run computes, named in every entry.
LIBRARIES = ("torch", "torchtune", "torchao", "transformers", "inspect-ai", "hydra-core", "submitit", "omegaconf")
GIT_TIMEOUT_S = 30


@dataclass(frozen=True)
class GitState:
    """A directory's git state at launch; `commit` None when it is not in a git repository."""

    directory: str
    commit: str | None = None
    branch: str | None = None  # None: a detached HEAD
    dirty: bool = False
    diff: str | None = None  # the dirty tree's `git diff HEAD`, saved beside provenance.json
    untracked: tuple[str, ...] = ()
    note: str | None = None  # why there is no commit


def git(directory: Path, *args: str, timeout_s: float = GIT_TIMEOUT_S) -> str:
    """`git -C <directory> ARGS`'s output; FileNotFoundError or CalledProcessError (why_not)."""
    return subprocess.run(
        ["git", "-C", str(directory), *args], capture_output=True, text=True, check=True, timeout=timeout_s
    ).stdout


def why_not(error: FileNotFoundError | subprocess.CalledProcessError) -> str:
    """Why git gave no answer: not installed, not in a repository, or what it said."""
    if isinstance(error, FileNotFoundError):
        return "git is not installed"
    return "not in a git repository" if "not a git repository" in error.stderr else error.stderr.strip()


def work_tree(directory: Path) -> tuple[Path | None, str]:
    """The git work tree `directory` is in, or None and why there is none."""
    try:
        return Path(git(directory, "rev-parse", "--show-toplevel").strip()).resolve(), ""
    except (FileNotFoundError, subprocess.CalledProcessError) as err:
        return None, why_not(err)


def git_state(directory: Path) -> tuple[GitState, str]:
    """The directory's git state and the diff of its uncommitted changes ("" when clean)."""
    try:
        commit = git(directory, "rev-parse", "HEAD").strip()
    except (FileNotFoundError, subprocess.CalledProcessError) as err:
        return GitState(str(directory), note=why_not(err) or "no commit"), ""
    branch = git(directory, "rev-parse", "--abbrev-ref", "HEAD").strip()
    changed = git(directory, "status", "--porcelain", "--untracked-files=all", "--", ".").splitlines()
    untracked = tuple(line[3:] for line in changed if line.startswith("??"))
    diff = git(directory, "diff", "HEAD", "--", ".")
    return GitState(
        str(directory), commit=commit, branch=None if branch == "HEAD" else branch, dirty=bool(changed),
        untracked=untracked,
    ), diff


def installed_packages() -> list[str]:
    """Every installed distribution as `name==version`, sorted; the first found on sys.path,
    the one imported, where two share a name (pip freeze's list, without running pip: the
    launch does not wait for it)."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name, version = name_and_version(dist.read_text("METADATA") or dist.read_text("PKG-INFO") or "")
        found.setdefault(name or "?", version or "?")
    return sorted(f"{name}=={version}" for name, version in found.items())


def name_and_version(text: str) -> tuple[str | None, str | None]:
    """A core metadata file's Name and Version, read from its header lines. Not
    `dist.metadata`: its email parser read the whole of each file, 0.2 s of every launch."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if not line:
            break  # the end of the headers: the long description follows
        key, _, value = line.partition(": ")
        if key in ("Name", "Version") and key not in found:
            found[key] = value.strip()
    return found.get("Name"), found.get("Version")


def library_versions(names: Sequence[str] = LIBRARIES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def record_launch(
    sweep_dir: Path, command_line: Sequence[str], config_yaml: str, directories: Mapping[str, Path],
    now: dt.datetime | None = None,
) -> dict[str, object]:
    """Append this launch's entry to provenance.json (and write its packages and diffs beside
    it); the entry. `directories`: label -> a directory whose git state is recorded (the
    experiment's, the app's code)."""
    path = sweep_dir / PROVENANCE_NAME
    launches = json.loads(path.read_text(encoding="utf-8"))["launches"] if path.is_file() else []
    number = len(launches) + 1
    folder = sweep_dir / PROVENANCE_DIR
    folder.mkdir(exist_ok=True)
    packages = folder / f"packages-{number}.txt"
    write_atomically(packages, "\n".join(installed_packages()) + "\n")
    trees = {}
    for label, directory in directories.items():
        state, diff = git_state(directory)
        if diff:
            saved = folder / f"{label}-{number}.diff"
            write_atomically(saved, diff)
            state = GitState(**{**asdict(state), "diff": str(saved)})
        trees[label] = {**asdict(state), "untracked": list(state.untracked)}  # as JSON has it
    entry: dict[str, object] = {
        "launch": number,
        "time": timestamp(now),
        "host": socket.gethostname(),
        "user": getpass.getuser(),
        "command_line": list(command_line),
        "config": config_yaml,
        "ttlaunch": __version__,
        "python": platform.python_version(),
        "executable": sys.executable,
        "libraries": library_versions(),
        "packages": str(packages),
        "git": trees,
    }
    write_atomically(path, json.dumps({"launches": [*launches, entry]}, indent=2) + "\n")
    return entry


def last_commits(sweep_dir: Path) -> list[str]:
    """The newest launch's trees, one line each, for summary.md; none without provenance.json."""
    path = sweep_dir / PROVENANCE_NAME
    try:
        launches = json.loads(path.read_text(encoding="utf-8"))["launches"]
    except (OSError, ValueError, KeyError):
        return []
    if not launches:
        return []
    lines = []
    for label, tree in launches[-1].get("git", {}).items():
        if tree.get("commit") is None:
            lines.append(f"- {label}: `{tree.get('directory')}` ({tree.get('note')})")
            continue
        state = f"dirty: diff in `{tree['diff']}`" if tree.get("diff") else ("dirty" if tree.get("dirty") else "clean")
        branch = tree.get("branch") or "detached HEAD"
        lines.append(f"- {label}: `{tree.get('directory')}` at {tree['commit'][:12]} ({branch}, {state})")
    return lines
