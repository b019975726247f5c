"""Shared fixtures: Hydra composition of the shipped configs, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

import ttlaunch.inputs.resolvers  # noqa: F401


@pytest.fixture
def compose_config() -> Callable[..., DictConfig]:
    """Compose the shipped config with overrides, Hydra's node included (as in a launch)."""

    def _compose(*overrides: str) -> DictConfig:
        with initialize_config_module(config_module="ttlaunch.configs", version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)

    return _compose


def cli_invocation(tmp_path: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    """argv and environment of `python -m ttlaunch.launch ARGS` with sweeps under tmp_path/work."""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    # Hydra's argparse wants every override in one run: flags, overrides, then --multirun.
    flags = [arg for arg in args if arg != "--multirun"]
    multirun = ["--multirun"] if "--multirun" in args else []
    return [sys.executable, "-m", "ttlaunch.launch", *flags, f"paths.work_root={tmp_path / 'work'}", *multirun], env


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `python -m ttlaunch.launch ARGS` with sweeps under tmp_path/work."""

    def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        command, env = cli_invocation(tmp_path, *args)
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)

    return _run


REPO = Path(__file__).resolve().parents[1]


def frames_of_ours(stderr: str) -> list[str]:
    """The traceback frames in `stderr` that come from ttlaunch's or Hydra's code, wherever
    they are installed (not every line that happens to contain the word "ttlaunch")."""
    import hydra

    import ttlaunch

    homes = [str(Path(ttlaunch.__file__).resolve().parent), str(Path(hydra.__file__).resolve().parent)]
    homes += [str(Path(ttlaunch.__file__).parent), str(Path(hydra.__file__).parent)]
    return [line for line in stderr.splitlines() if line.lstrip().startswith("File \"") and any(home in line for home in homes)]


def _cluster_answers() -> bool:
    try:
        return subprocess.run(["scontrol", "ping"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """The project's single-node SLURM: found running, or started (installed if need be)."""
    if _cluster_answers():
        return
    if os.geteuid() != 0:
        pytest.skip("the test cluster is not running and starting it needs root (scripts/testcluster.sh start)")
    subprocess.run([str(REPO / "scripts" / "testcluster.sh"), "start"], check=True, timeout=900)
    assert _cluster_answers()
