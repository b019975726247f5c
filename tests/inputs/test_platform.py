"""Platform detection and the compute default that follows it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import ttlaunch.inputs.resolvers  # noqa: F401
from ttlaunch.inputs.platform import BASE, Platform, default_preset, detect_platform
from ttlaunch.launch import with_platform_compute

LUMI = Platform("lumi", "lumi/mi250x_1x", hostname_patterns=(r"^uan\d+",))


def test_the_named_platform_then_the_hostname_then_base():
    assert detect_platform({}, "uan03.lumi.csc", [LUMI]) == "lumi"
    assert detect_platform({}, "my-laptop", [LUMI]) == BASE
    assert detect_platform({"TTLAUNCH_PLATFORM": "bon_echo"}, "uan03", [LUMI]) == "bon_echo"


def test_the_shipped_platforms_have_presets_and_the_base_has_none():
    assert detect_platform({}, "login.killarney.vectorinstitute.ai") == "killarney"
    assert default_preset("killarney") == "killarney/l40s_1x" and default_preset("bon_echo") == "bon_echo/a40_1x"
    assert default_preset(BASE) is None


def test_the_resolver_names_the_platform(monkeypatch):
    monkeypatch.setenv("TTLAUNCH_PLATFORM", "killarney")
    assert OmegaConf.create({"where": "${platform_detect:}"}).where == "killarney"


def test_the_compute_default_follows_the_platform_unless_the_command_line_picks_one(monkeypatch):
    monkeypatch.setenv("TTLAUNCH_PLATFORM", "bon_echo")
    argv = ["--config-dir", "/my/configs", "experiment=x", "--multirun"]
    assert with_platform_compute(argv) == ["--config-dir", "/my/configs", "compute=bon_echo/a40_1x", "experiment=x", "--multirun"]
    assert with_platform_compute(["experiment=x", "compute=local/cpu"]) == ["experiment=x", "compute=local/cpu"]
    monkeypatch.setenv("TTLAUNCH_PLATFORM", BASE)
    assert with_platform_compute(["experiment=x"]) == ["experiment=x"]


@pytest.mark.cli
def test_a_launch_on_a_detected_platform_composes_its_preset(tmp_path: Path):
    env = {**os.environ, "TTLAUNCH_PLATFORM": "killarney"}
    result = subprocess.run(
        [sys.executable, "-m", "ttlaunch.launch", "experiment=demo", f"paths.work_root={tmp_path}", "--cfg", "job"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "compute=killarney/l40s_1x" in result.stderr
    assert OmegaConf.create(result.stdout).compute.cluster == "killarney"
