"""What one evaluation job per checkpoint saves, side by side in one run: the demo's three
learning rates trained for 2 epochs of `--steps` (10) steps, real torchtune on CPU on the local
executor, each epoch's checkpoint and the base model evaluated on two tasks with real
inspect-ai (the demo's capitalize, and the same words asked again as a second task): first
with `evaluation.one_job_per_task=true` (a job per checkpoint and task, as before), then as
ttlaunch does by default (a job per checkpoint, its tasks in one `inspect eval`). Both use
demo assets built once beforehand.

Prints, for each: the evaluation jobs, the model loads (inspect runs: each loads its model
once for all its tasks; counted from the logs' run ids), every task's scores present, the
evaluation jobs' CPU-hours (elapsed x their one CPU) and the launch's wall time; then the
ratios.

    .venv/bin/python benchmarks/evaluation_jobs.py [--steps N] [--keep DIR] [--quick]

`--quick` (what the test suite runs): lr 1e-2 alone, one epoch of 2 steps.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from inspect_ai.log import list_eval_logs, read_eval_log
from pruning import sweep

DEMO_TASK = Path(__file__).resolve().parent.parent / "configs" / "experiment" / "demo_task.py"
TASKS = ("capitalize", "capitalize_again")
RUNS = ("lr1e-3", "lr3e-3", "lr1e-2")


def evaluation_section(runs: tuple[str, ...], epochs: int) -> str:
    """The summary's evaluation: each run's every epoch and the base model, on both tasks."""
    tasks = ", ".join(TASKS)
    lines = [
        "evaluation:", "  max_tokens: 4", "  do_sample: false", "  tasks:",
        "    - {name: capitalize, script: demo_task.py}", "    - {name: capitalize_again, script: again_task.py}", "  matrix:",
        *(f"    - {{run: {run}, tasks: [{tasks}], epochs: {list(range(epochs))}}}" for run in runs),
        f"    - {{run: base, tasks: [{tasks}]}}",
    ]
    return "\n".join(lines) + "\n"


def experiment_configs(root: Path, assets: Path, runs: tuple[str, ...], epochs: int) -> Path:
    """A config dir whose `experiment=evaluated` is the demo's `runs` trained for `epochs`, its
    base model the assets', with two tasks per checkpoint."""
    configs = root / "configs" / "experiment"
    configs.mkdir(parents=True)
    demo = (DEMO_TASK.parent / "demo.yaml").read_text()
    demo = demo[:demo.index("evaluation:")].replace("epochs: 4", f"epochs: {epochs}")
    demo = demo.replace("${paths.work_dir}/demo_assets/model", str(assets / "model"))
    left_out = [run for run in RUNS if run not in runs]
    demo = "\n".join(line for line in demo.splitlines() if not any(f"name: {run}," in line for run in left_out)) + "\n"
    (configs / "evaluated.yaml").write_text(demo + evaluation_section(runs, epochs))
    shutil.copy(DEMO_TASK, configs)
    (configs / "again_task.py").write_text(DEMO_TASK.read_text().replace("def capitalize(", "def capitalize_again("))
    return configs.parent


def model_loads(evaluations: list[dict]) -> int:
    """inspect runs over the evaluation jobs' logs: each loaded its model once."""
    runs = set()
    for job in evaluations:
        runs |= {read_eval_log(info, header_only=True).eval.run_id for info in list_eval_logs(job["output_dir"])}
    return len(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="training steps per epoch (at most 82)")
    parser.add_argument("--keep", type=Path, help="keep the sweeps in this dir (default: a temporary one, removed)")
    parser.add_argument("--quick", action="store_true", help="lr 1e-2 alone, 1 epoch of 2 steps (the test suite's run)")
    args = parser.parse_args()
    runs, epochs, steps = (RUNS[-1:], 1, 2) if args.quick else (RUNS, 2, args.steps)
    checkpoints = len(runs) * epochs + 1  # and the base model
    with tempfile.TemporaryDirectory() as temporary:
        base = args.keep or Path(temporary)
        base.mkdir(parents=True, exist_ok=True)
        assets = base / "demo_assets"
        subprocess.run([sys.executable, "-m", "ttlaunch.job.demo_assets", str(assets)], check=True, capture_output=True)
        configs = experiment_configs(base, assets, runs, epochs)
        results = {}
        for label, overrides in (("per task", ("evaluation.one_job_per_task=true",)), ("per checkpoint", ())):
            _, state, wall = sweep(
                base / label.replace(" ", "_"), assets, steps, "--config-dir", str(configs), "experiment=evaluated",
                "hydra.callbacks.monitor.live=off", *overrides,
            )
            evaluations = [job for job in state["jobs"].values() if job["kind"] == "evaluation"]
            scored = sum(len(job["scores"]) for job in evaluations)
            hours = sum(job["elapsed_s"] or 0 for job in evaluations) / 3600
            loads = model_loads(evaluations)
            results[label] = (len(evaluations), loads, hours, wall)
            print(f"{label:15} {len(evaluations):2} evaluation jobs, {loads:2} model loads, {scored} task scores "
                  f"({'all' if scored == checkpoints * len(TASKS) else 'NOT all'} of {checkpoints} checkpoints x "
                  f"{len(TASKS)} tasks); "
                  f"evaluations {hours:.4f} CPU-hours; launch to exit {wall:.0f} s")
        (jobs, loads, hours, wall), (jobs_now, loads_now, hours_now, wall_now) = results["per task"], results["per checkpoint"]
        print(f"per checkpoint / per task: jobs {jobs_now}/{jobs}, model loads {loads_now}/{loads}, "
              f"evaluation CPU-hours {hours_now / hours:.2f}x, launch to exit {wall_now / wall:.2f}x")


if __name__ == "__main__":
    main()
