"""Dry run: each job's batch script written and printed, nothing submitted, checked against
golden files (paths normalised) for every shipped GPU preset: what each asks SLURM for, and
how many processes its payload starts (tune run --nproc_per_node N on N > 1 GPUs).

Regenerate after a deliberate change: TTLAUNCH_WRITE_GOLDEN=1 pytest tests/test_dry_run.py."""

import os
import sys
from pathlib import Path

import pytest

from support import REPO, TESTS

GOLDEN = TESTS / "golden"
CONFIGS = REPO / "configs"


def normalised(text: str, sweep: Path) -> str:
    return text.replace(str(sweep), "<SWEEP>").replace(sys.executable, "<PYTHON>")


GPU_PRESETS = [
    ("killarney/h100_1x", "on"), ("killarney/h100_2x", "on"), ("killarney/h100_4x", "on"),
    ("killarney/l40s_1x", "on"), ("killarney/l40s_2x", "on"),
    ("bon_echo/a40_1x", "off"), ("bon_echo/a40_4x", "on"), ("bon_echo/a100_1x", "on"),
]


def test_every_shipped_gpu_preset_has_a_golden_file():
    presets = sorted(str(p.relative_to(CONFIGS / "compute").with_suffix("")) for p in (CONFIGS / "compute").glob("*/*.yaml"))
    with_gpus = [preset for preset in presets if "gpus_per_node:" in (CONFIGS / "compute" / f"{preset}.yaml").read_text()]
    assert sorted(preset for preset, _ in GPU_PRESETS) == with_gpus


@pytest.mark.parametrize(
    ("preset", "requeue", "golden"),
    [(preset, requeue, f"{preset.replace('/', '_')}_requeue_{requeue}.sbatch") for preset, requeue in GPU_PRESETS],
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
    if os.environ.get("TTLAUNCH_WRITE_GOLDEN") == "1":
        (GOLDEN / golden).write_text(normalised(script, sweep))
    assert normalised(script, sweep) == (GOLDEN / golden).read_text()
    assert script in result.stdout  # printed too
    # Nothing was submitted or recorded.
    assert not (sweep / "jobs.json").exists() and not (sweep / "run-torchtune.log").exists()
    assert not (sweep / "rank16_lr5e-5").exists()


def test_a_two_node_job_runs_one_task_per_node_each_starting_torchtune_on_its_gpus(run_cli, tmp_path: Path):
    result = run_cli("experiment=cap_4L", "compute=killarney/h100_4x", "compute.nodes=2", "hydra.launcher.dry_run=true")
    assert result.returncode == 0, result.stderr
    script = (tmp_path / "work" / "ttlaunch_sweeps" / "cap_4L_lora_lr_sweep" / "dry_run" / "rank8_lr1e-5.sbatch").read_text()
    assert "#SBATCH --nodes=2\n" in script and "#SBATCH --ntasks-per-node=1\n" in script
    assert "#SBATCH --gres=gpu:h100:4\n" in script
    # In the job each task adds where they meet: --nnodes 2 --node_rank R --master_addr ... --master_port ...
    assert "# payload: tune run --nproc_per_node 4 lora_finetune_distributed --config llama3_2/1B_lora " in script


def test_a_dry_run_says_which_preset_values_the_users_flags_replace(run_cli, tmp_path: Path):
    result = run_cli(
        "experiment=cap_4L", "compute=bon_echo/a40_1x", "+user.slurm.additional_parameters.qos=m2",
        "hydra.launcher.dry_run=true",
    )
    assert result.returncode == 0, result.stderr
    assert "rank8_lr1e-5: additional_parameters.qos=m2 replaces qos=normal" in result.stdout + result.stderr


def test_a_sweep_of_the_presets_values_asks_each_job_for_its_own(run_cli, tmp_path: Path):
    # Each combination of the command line is its own config: its memory, its trainer's base config.
    result = run_cli(
        "experiment=cap_4L", "compute=killarney/l40s_1x", "compute.mem_gb=32,64",
        "payload.base_config=llama3_2/1B_lora_single_device,qwen2_5/0.5B_lora_single_device",
        "hydra.launcher.dry_run=true", "--multirun",
    )
    assert result.returncode == 0, result.stderr
    dry_run = tmp_path / "work" / "ttlaunch_sweeps" / "cap_4L_lora_lr_sweep" / "dry_run"
    assert len(list(dry_run.glob("*.sbatch"))) == 8 * 4
    for mem in (32, 64):
        for config in ("llama3_2/1B_lora_single_device", "qwen2_5/0.5B_lora_single_device"):
            name = f"rank8_lr1e-5__compute.mem_gb-{mem}__payload.base_config-{config.replace('/', '-')}.sbatch"
            script = (dry_run / name).read_text()
            assert f"#SBATCH --mem={mem}GB\n" in script, script
            assert f" --config {config} " in script, script
