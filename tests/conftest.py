"""Shared fixtures (Hydra composition of the shipped configs, a CLI runner, the test cluster)
and the test tiers.

Tiers, by marker: `slurm` (the real test cluster), `torchtune` (real training), `cli` (whole
launches and other subprocesses, seconds each), `gpu`. Every other test is `unit`: no
subprocess, no cluster; `pytest -m unit` runs them alone, in well under a minute."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

import ttlaunch.inputs.resolvers  # noqa: F401

from support import REPO, cli_invocation


@pytest.fixture
def compose_config() -> Callable[..., DictConfig]:
    """Compose the shipped config with overrides, Hydra's node included (as in a launch)."""

    def _compose(*overrides: str) -> DictConfig:
        with initialize_config_module(config_module="ttlaunch.configs", version_base="1.3"):
            return compose(config_name="ttlaunch", overrides=list(overrides), return_hydra_config=True)

    return _compose


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `python -m ttlaunch.launch ARGS` with sweeps under tmp_path/work."""

    def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        command, env = cli_invocation(tmp_path, *args)
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)

    return _run


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


_TIERS = ("slurm", "torchtune", "cli", "gpu")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "run_cli" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cli)
        if not any(item.get_closest_marker(tier) for tier in _TIERS):
            item.add_marker(pytest.mark.unit)
    # The test cluster's own tests restart it: they run after every other test.
    items.sort(key=lambda item: item.path.name == "test_testcluster.py")
