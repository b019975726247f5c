"""Early stopping with real torchtune (and inspect-ai) on CPU, on the local executor: the
demo's task as a 9-point sweep (3 learning rates x 3 LoRA ranks, 3 epochs), trained whole
and with `pruning=halving` (rungs after epochs 1 and 2, eta 3), side by side; and its three
learning rates pruned by an evaluation's score."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import cli_invocation

pytest.importorskip("torchtune")
pytestmark = pytest.mark.torchtune

# Long epochs beside each job's start-up, as a real run's are (500 steps of one example); ranks
# 1, 2 and 4, whose best point leads at every epoch. (At 656 steps lr3e-3 and lr1e-2 at rank 4
# change places after epoch 2; of ranks 2, 8 and 32, 8 and 32 change places in the last epoch.)
GRID = ["+lora_rank=1,2,4", "+epochs=3", "+batch_size=1", "+max_steps_per_epoch=500", "evaluation.enabled=false"]
POINTS = [f"lr{lr}__lora_rank-{rank}" for lr in ("1e-3", "3e-3", "1e-2") for rank in (1, 2, 4)]


def sweep(root: Path, assets: Path, *overrides: str) -> tuple[Path, dict]:
    """The 9-point sweep under `root`, on demo assets built once for both sweeps."""
    shared = [
        f"payload.base_config={assets}/lora_tiny_llama.yaml", f"payload.prepare=[[python,-m,ttlaunch.job.demo_assets,{assets}]]",
        f"payload.env.HF_HOME={assets.parent / 'hf_home'}", "hydra.callbacks.monitor.live=off",
    ]
    command, env = cli_invocation(root, "experiment=demo", *GRID, *shared, *overrides, "--multirun")
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep_dir = root / "work" / "ttlaunch_sweeps" / "demo"
    return sweep_dir, json.loads((sweep_dir / "jobs.json").read_text())


def last_epoch_loss(sweep_dir: Path, job: dict) -> float:
    """A completed run's mean training loss over its last epoch, from its metric log."""
    lines = next((sweep_dir / job["name"] / "outputs" / "logs").glob("log_*.txt")).read_text().splitlines()
    losses = [float(dict(pair.split(":") for pair in line.split()[3:])["loss"]) for line in lines]
    per_epoch = job["training"]["steps_per_epoch"]
    return sum(losses[-per_epoch:]) / per_epoch


def test_halving_finds_the_full_sweeps_best_point_for_at_most_60_percent_of_its_cpu_hours(tmp_path: Path):
    assets = tmp_path / "demo_assets"
    subprocess.run([sys.executable, "-m", "ttlaunch.job.demo_assets", str(assets)], check=True, capture_output=True, timeout=300)
    (tmp_path / "full").mkdir()
    (tmp_path / "halving").mkdir()
    full_dir, full = sweep(tmp_path / "full", assets)
    halving_dir, halving = sweep(tmp_path / "halving", assets, "pruning=halving")

    assert sorted(full["jobs"]) == sorted(POINTS) == sorted(halving["jobs"])
    assert {job["status"] for job in full["jobs"].values()} == {"COMPLETED"}
    states = {name: job["status"] for name, job in halving["jobs"].items()}
    assert set(states.values()) == {"COMPLETED", "PRUNED"} and list(states.values()).count("PRUNED") >= 5, states

    def best(sweep_dir: Path, state: dict) -> str:
        completed = [job for job in state["jobs"].values() if job["status"] == "COMPLETED"]
        return min(completed, key=lambda job: last_epoch_loss(sweep_dir, job))["name"]

    assert best(halving_dir, halving) == best(full_dir, full) == "lr1e-2__lora_rank-4"
    # Local jobs hold one CPU each: CPU-hours are their elapsed times.
    full_s = sum(job["elapsed_s"] for job in full["jobs"].values())
    halving_s = sum(job["elapsed_s"] for job in halving["jobs"].values())
    assert halving_s <= 0.6 * full_s, f"pruned sweep {halving_s:.0f} s of CPU, full {full_s:.0f} s"

    # Each decision made once, kept in jobs.json and the log; a pruned run kept its rung's checkpoint.
    decisions = halving["rungs"]
    assert len({(decision["point"], decision["rung"]) for decision in decisions}) == len(decisions)
    assert sorted(decision["point"] for decision in decisions if decision["rung"] == 1) == sorted(POINTS)
    assert (halving_dir / "run-torchtune.log").read_text().count("] PRUNING: ") == len(decisions)
    for name, job in halving["jobs"].items():
        if job["status"] == "PRUNED":
            assert job["cause"] is None and job["pruned_at"] in (1, 2)
            rung_checkpoint = halving_dir / name / "outputs" / f"epoch_{job['pruned_at'] - 1}"
            assert (rung_checkpoint / "adapter_config.json").is_file() and (rung_checkpoint / "adapter_model.safetensors").is_file()
            assert job["training"]["steps_done"] < 3 * job["training"]["steps_per_epoch"]
    summary = (halving_dir / "summary.md").read_text()
    assert "### Early stopping" in summary and "| lr1e-2__lora_rank-4 | 1 |" in summary and "CPU-hours (each one's" in summary
    assert "✂ PRUNED:" in summary and "NOT COMPLETED: 0 runs" in summary


# The demo's task, its three learning rates pruned by the score of epoch 1's checkpoint.
SCORED = """
defaults:
  - override /payload@_global_.payload: tiny_llama_demo
experiment: {name: scored}
controls: {lora_rank: 8, lora_alpha: 16, epochs: 4, batch_size: 1, max_steps_per_epoch: 600}
models:
  base: [{name: tiny-llama, path: "${paths.work_dir}/demo_assets/model"}]
runs:
  - {name: lr1e-3, type: fine-tuned, model: tiny-llama, parameters: {lr: 1.0e-3}}
  - {name: lr3e-3, type: fine-tuned, model: tiny-llama, parameters: {lr: 3.0e-3}}
  - {name: lr1e-2, type: fine-tuned, model: tiny-llama, parameters: {lr: 1.0e-2}}
evaluation:
  max_tokens: 4
  do_sample: false
  tasks: [{name: capitalize, script: demo_task.py}]
  matrix:
    - {run: lr1e-3, tasks: [capitalize], epochs: [0]}
    - {run: lr3e-3, tasks: [capitalize], epochs: [0]}
    - {run: lr1e-2, tasks: [capitalize], epochs: [0]}
"""


def test_an_evaluations_score_of_the_rungs_checkpoint_is_the_measure(tmp_path: Path):
    configs = tmp_path / "configs" / "experiment"
    configs.mkdir(parents=True)
    (configs / "scored.yaml").write_text(SCORED)
    shutil.copy(Path(__file__).resolve().parent.parent / "configs" / "experiment" / "demo_task.py", configs)
    command, env = cli_invocation(
        tmp_path, "--config-dir", str(tmp_path / "configs"), "experiment=scored", "pruning=halving", "pruning.rungs=[1]",
        "pruning.metric=capitalize/match", "hydra.callbacks.monitor.live=off", "--multirun",
    )
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "scored"
    state = json.loads((sweep / "jobs.json").read_text())
    scores = {
        run: state["jobs"][f"{run}/epoch0"]["scores"]["capitalize"]["metrics"]["match/accuracy"] for run in ("lr1e-3", "lr3e-3", "lr1e-2")
    }
    decisions = {decision["point"]: decision for decision in state["rungs"]}
    assert {point: decision["measure"] for point, decision in decisions.items()} == scores
    best = min(scores, key=lambda run: (-scores[run], run))  # higher is better; a tie goes to the name first
    assert [point for point, decision in decisions.items() if decision["kept"]] == [best], scores  # one of three goes on
    assert {run: state["jobs"][run]["status"] for run in scores} == {run: "COMPLETED" if run == best else "PRUNED" for run in scores}
    assert "Successive halving on capitalize/match (higher is better)" in (sweep / "summary.md").read_text()
