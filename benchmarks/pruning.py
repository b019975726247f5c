"""What early stopping saves, side by side in one run: the demo's task as a 9-point sweep
(learning rates 1e-3, 3e-3, 1e-2 x LoRA ranks 1, 2, 4; 3 epochs of `--steps` (500) steps of one
example, as tests/test_pruning_e2e.py), real torchtune on CPU on the local executor, trained whole and then with
`pruning=halving` (rungs after epochs 1 and 2, eta 3). Both sweeps use demo assets built once
beforehand, so neither pays for building them.

Prints, for each: the best point (the lowest mean training loss over its last epoch, among
the runs that completed), CPU-hours (each job's elapsed time x its one CPU), the wall time of
the launch command; then the pruned sweep's share of the full one's CPU-hours (target <= 0.6,
the best point the same), and what ttlaunch's summary.md says it saved.

    .venv/bin/python benchmarks/pruning.py [--steps N] [--keep DIR] [--quick]

`--quick` (what the test suite runs): LoRA rank 1 only (3 points), epochs of 2 steps.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRID = ["+lora_rank=1,2,4", "+epochs=3", "+batch_size=1", "evaluation.enabled=false", "hydra.callbacks.monitor.live=off"]


def sweep(root: Path, assets: Path, steps: int, *arguments: str) -> tuple[Path, dict, float]:
    """One sweep of the demo's payload (`arguments`: its experiment and overrides) under `root`,
    on demo assets built beforehand: its dir, its jobs.json and the launch's wall seconds."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = [
        sys.executable, "-m", "ttlaunch.launch", *arguments, f"+max_steps_per_epoch={steps}",
        f"payload.base_config={assets}/lora_tiny_llama.yaml", f"payload.prepare=[[python,-m,ttlaunch.job.demo_assets,{assets}]]",
        f"payload.env.HF_HOME={assets.parent / 'hf_home'}", f"paths.work_root={root}", "--multirun",
    ]
    began = time.perf_counter()
    subprocess.run(command, cwd=root.parent, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - began
    sweep_dir = root / "ttlaunch_sweeps" / "demo"
    return sweep_dir, json.loads((sweep_dir / "jobs.json").read_text()), wall


def last_epoch_loss(sweep_dir: Path, job: dict) -> float:
    lines = next((sweep_dir / job["name"] / "outputs" / "logs").glob("log_*.txt")).read_text().splitlines()
    losses = [float(dict(pair.split(":") for pair in line.split()[3:])["loss"]) for line in lines]
    per_epoch = job["training"]["steps_per_epoch"]
    return sum(losses[-per_epoch:]) / per_epoch


def best_point(sweep_dir: Path, state: dict) -> tuple[str, float]:
    completed = {job["name"]: last_epoch_loss(sweep_dir, job) for job in state["jobs"].values() if job["status"] == "COMPLETED"}
    name = min(completed, key=completed.__getitem__)
    return name, completed[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=500, help="steps per epoch (of one example; at most 656)")
    parser.add_argument("--keep", type=Path, help="keep the sweeps in this dir (default: a temporary one, removed)")
    parser.add_argument("--quick", action="store_true", help="3 points, epochs of 2 steps (the test suite's run)")
    args = parser.parse_args()
    grid, steps = (["+lora_rank=1", *GRID[1:]], 2) if args.quick else (GRID, args.steps)
    with tempfile.TemporaryDirectory() as temporary:
        base = args.keep or Path(temporary)
        base.mkdir(parents=True, exist_ok=True)
        assets = base / "demo_assets"
        subprocess.run([sys.executable, "-m", "ttlaunch.job.demo_assets", str(assets)], check=True, capture_output=True)
        results = {}
        for label, overrides in (("full", ()), ("halving", ("pruning=halving",))):
            sweep_dir, state, wall = sweep(base / label, assets, steps, "experiment=demo", *grid, *overrides)
            hours = sum(job["elapsed_s"] or 0 for job in state["jobs"].values()) / 3600
            pruned = sum(job["status"] == "PRUNED" for job in state["jobs"].values())
            best, loss = best_point(sweep_dir, state)
            results[label] = (hours, best)
            print(f"{label:8} best point {best} (last epoch's mean loss {loss:.4f}); {hours:.4f} CPU-hours; "
                  f"{pruned} runs pruned; launch to exit {wall:.0f} s")
            said = re.search(r"^Stopping .*$", (sweep_dir / "summary.md").read_text(), re.MULTILINE)
            if said:
                print(f"         summary.md: {said.group(0)}")
        (full_hours, full_best), (halving_hours, halving_best) = results["full"], results["halving"]
        print(f"halving / full CPU-hours: {halving_hours / full_hours:.2f}x (target <= 0.60x); "
              f"same best point: {'yes' if full_best == halving_best else 'NO'}")


if __name__ == "__main__":
    main()
