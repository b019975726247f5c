"""Dry run: each job's batch script written and printed, nothing submitted, checked against
golden files (paths normalised) for a Killarney and a Bon Echo preset."""

import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"


def normalised(text: str, sweep: Path) -> str:
    return text.replace(str(sweep), "<SWEEP>").replace(sys.executable, "<PYTHON>")


@pytest.mark.parametrize(
    ("preset", "requeue", "golden"),
    [("killarney/h100_1x", "on", "killarney_h100_1x_requeue_on.sbatch"), ("bon_echo/a40_1x", "off", "bon_echo_a40_1x_requeue_off.sbatch")],
)
def test_dry_run_scripts_match_golden_files(run_cli, tmp_path: Path, preset, requeue, golden):
    result = run_cli(
        "experiment=cap_4L", f"compute={preset}", f"requeue={requeue}", "user.slurm.account=def-lab",
        "+user.slurm.additional_parameters.mail-type=END", "hydra.launcher.dry_run=true",
    )
    assert result.returncode == 0, result.stderr
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "cap_4L_lora_lr_sweep"
    scripts = sorted((sweep / "dry_run").glob("*.sbatch"))
    assert len(scripts) == 8
    script = (sweep / "dry_run" / "rank16_lr5e-5.sbatch").read_text()
    assert normalised(script, sweep) == (GOLDEN / golden).read_text()
    assert script in result.stdout  # printed too
    # Nothing was submitted or recorded.
    assert not (sweep / "jobs.json").exists() and not (sweep / "run-torchtune.log").exists()
    assert not (sweep / "rank16_lr5e-5").exists()
