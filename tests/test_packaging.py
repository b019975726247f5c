"""Start-up stays cheap, and the configs ship inside the wheel."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from support import REPO

pytestmark = pytest.mark.cli


def test_plugin_and_entry_modules_import_nothing_heavy():
    code = (
        "import sys, hydra_plugins.ttlaunch_launcher.config, hydra_plugins.ttlaunch_launcher.launcher, "
        "hydra_plugins.ttlaunch_launcher.sweeper, hydra_plugins.ttlaunch_launcher.experiment_dirs, "
        "hydra_plugins.ttlaunch_launcher.app_groups, ttlaunch.launch; "
        "heavy = sorted(m for m in ('submitit', 'torch', 'torchtune', 'filelock', 'cloudpickle') if m in sys.modules); "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_what_every_job_imports_loads_neither_the_monitor_nor_the_submitter():
    # Hydra instantiates the monitor callback in each job too; a trivial job's CPU goes mostly to imports.
    code = (
        "import sys, ttlaunch.monitor.callback, ttlaunch.job.job_callable, ttlaunch.job.app_attempt; "
        "print(sorted(m for m in ('ttlaunch.monitor.sweep_monitor', 'ttlaunch.records.ledger', 'ttlaunch.submit.submitter', "
        "'ttlaunch.inputs.launch_inputs', 'matplotlib') if m in sys.modules))"
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
    assert {"ttlaunch/configs/ttlaunch.yaml", "ttlaunch/configs/experiment/demo.yaml",
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


_DISCOVERY_PROBE = """
import sys
import sysconfig
import ttlaunch
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
found = {plugin.__name__ for kind in (Launcher, Sweeper) for plugin in Plugins.instance().discover(kind)}
print(ttlaunch.__file__)
print(sorted(name for name in found if name.startswith("TTLaunch")))
"""


@pytest.mark.parametrize("mode", ["wheel", "editable", "editable-strict"])
def test_hydra_finds_the_plugins_from_a_wheel_and_a_strict_editable_install(mode: str, tmp_path: Path):
    """A fresh environment whose only ttlaunch is this install (the dependencies come from
    the test's own environment, through a path entry that runs none of its .pth files). A
    default editable install maps hydra_plugins/ (outside src/) through setuptools' import
    hook, which Hydra's walk of the namespace does not list: it finds no plugin, as the
    docs/development.md says, though the package and its configs import."""
    project = tmp_path / "project"
    for part in ("src", "hydra_plugins", "configs", "pyproject.toml", "README.md"):
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, project / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, project / part)
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    site_packages = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], capture_output=True, text=True, check=True,
    ).stdout.strip())
    dependencies = sysconfig.get_path("purelib")
    (site_packages / "dependencies.pth").write_text(dependencies + "\n", encoding="utf-8")
    install = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--disable-pip-version-check"]
    if mode == "wheel":
        install.append(str(project))
    else:
        install += ["-e", str(project)]
        if mode == "editable-strict":
            install += ["--config-settings", "editable_mode=strict"]
    subprocess.run(install, check=True, capture_output=True, cwd=tmp_path)
    probe = subprocess.run([str(python), "-c", _DISCOVERY_PROBE], capture_output=True, text=True, cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    location, plugins = probe.stdout.splitlines()
    home = site_packages if mode == "wheel" else (project / "build" if mode == "editable-strict" else project / "src")
    assert Path(location).is_relative_to(home), location
    if mode == "editable":
        assert plugins == "[]"
        return
    assert plugins == "['TTLaunchLauncher', 'TTLaunchSweeper']"
    # The plugin's configs are found too: ttlaunch's own app composes with its sweeper.
    shown = subprocess.run(
        [str(python), "-m", "ttlaunch.launch", "experiment=demo", "--cfg", "hydra", "--package", "hydra.sweeper"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert shown.returncode == 0, shown.stderr
    assert "TTLaunchSweeper" in shown.stdout
