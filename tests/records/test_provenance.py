"""provenance.json: one entry per launch, the git state of the code and experiment dirs."""

import json
import subprocess
from importlib import metadata
from pathlib import Path

from ttlaunch import __version__
from ttlaunch.records.provenance import (
    PROVENANCE_NAME,
    git_state,
    installed_packages,
    last_commits,
    name_and_version,
    record_launch,
)


def git(directory: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, check=True).stdout


def repository(path: Path) -> str:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "finetune.yaml").write_text("lr: 3e-4\n")
    git(path, "add", ".")
    git(path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "scaffold")
    return git(path, "rev-parse", "HEAD").strip()


def test_each_launch_appends_what_ran_with_the_commit_and_the_diff_of_a_dirty_tree(tmp_path: Path):
    experiment = tmp_path / "exp"
    commit = repository(experiment)
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    record_launch(sweep, ["ttlaunch", "launch", "experiment=x"], "a: 1\n", {"experiment": experiment})
    (first,) = json.loads((sweep / PROVENANCE_NAME).read_text())["launches"]
    assert first["git"]["experiment"] == {
        "directory": str(experiment), "commit": commit, "branch": "main", "dirty": False, "diff": None, "untracked": [],
        "note": None,
    }
    assert first["ttlaunch"] == __version__ and first["libraries"]["hydra-core"] and "submitit" in first["libraries"]
    packages = Path(first["packages"]).read_text().splitlines()
    assert any(line.startswith("hydra-core==") for line in packages)

    (experiment / "finetune.yaml").write_text("lr: 5e-3\n")
    (experiment / "notes.txt").write_text("new\n")
    second = record_launch(sweep, ["ttlaunch", "launch"], "a: 2\n", {"experiment": experiment})
    tree = second["git"]["experiment"]
    assert tree["dirty"] and tree["untracked"] == ["notes.txt"]
    assert "+lr: 5e-3" in Path(tree["diff"]).read_text()
    launches = json.loads((sweep / PROVENANCE_NAME).read_text())["launches"]
    assert [entry["launch"] for entry in launches] == [1, 2] and launches[0]["config"] == "a: 1\n"
    assert last_commits(sweep) == [f"- experiment: `{experiment}` at {commit[:12]} (main, dirty: diff in `{tree['diff']}`)"]


def test_a_directory_outside_git_is_said_not_an_error(tmp_path: Path):
    plain = tmp_path / "plain"
    plain.mkdir()
    state, diff = git_state(plain)
    assert (state.commit, state.note, diff) == (None, "not in a git repository", "")


def test_a_package_is_named_by_its_metadata_headers_not_its_description():
    text = (
        "Metadata-Version: 2.1\nName: tiny-pkg\nVersion: 1.2.3\nSummary: x\n\n"
        "Version: 9.9 (a line of the long description)\nName: other\n"
    )
    assert name_and_version(text) == ("tiny-pkg", "1.2.3")
    assert name_and_version("Summary: no name\n") == (None, None)


def test_the_package_list_is_what_importlib_metadata_reads():
    expected = {f"{dist.metadata['Name']}=={dist.version}" for dist in metadata.distributions()}
    assert set(installed_packages()) == expected
