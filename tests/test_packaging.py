"""Start-up stays cheap, and the configs ship inside the wheel."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from support import REPO

pytestmark = pytest.mark.cli


def test_plugin_and_entry_modules_import_nothing_heavy():
    code = (
        "import sys, hydra_plugins.ttlaunch_launcher.config, hydra_plugins.ttlaunch_launcher.launcher, "
        "hydra_plugins.ttlaunch_launcher.sweeper, hydra_plugins.ttlaunch_launcher.experiment_dirs, ttlaunch.launch; "
        "heavy = sorted(m for m in ('submitit', 'torch', 'torchtune', 'filelock', 'cloudpickle') if m in sys.modules); "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_namespace_init_in_hydra_plugins():
    assert not (REPO / "hydra_plugins" / "__init__.py").exists()


def test_the_wheel_ships_configs_and_plugin_and_runs(tmp_path: Path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO)],
        check=True, capture_output=True,
    )
    wheel = next(tmp_path.glob("ttlaunch-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"ttlaunch/configs/config.yaml", "ttlaunch/configs/experiment/demo.yaml",
            "ttlaunch/configs/compute/killarney/h100_1x.yaml", "hydra_plugins/ttlaunch_launcher/launcher.py"} <= names
    assert "hydra_plugins/__init__.py" not in names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)], check=True)
    # The installed wheel comes first on the path; the checkout is not used.
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = subprocess.run(
        [sys.executable, "-c", "import ttlaunch.launch, importlib.resources as r; print(r.files('ttlaunch.configs'))"],
        env=env, cwd=tmp_path, capture_output=True, text=True, check=True,
    )
    assert probe.stdout.strip().startswith(str(target))
    shown = subprocess.run(
        [sys.executable, "-m", "ttlaunch.launch", "experiment=cap_4L", "compute=bon_echo/a40_1x", "--cfg", "job"],
        env=env, cwd=tmp_path, capture_output=True, text=True,
    )
    assert shown.returncode == 0, shown.stderr
    assert "partition: a40" in shown.stdout and "rank64_lr5e-5" in shown.stdout
