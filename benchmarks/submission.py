"""Submission speed on the project's test cluster, measured side by side in one run.

For N runs (default 50): a plain loop of `sbatch` over equivalent scripts; submitit's
individual submits and its batch; ttlaunch with its default stagger hook, which submits
every job at once (submission time as the launcher reports it in ALL_SUBMITTED). Then
expansion plus dry run of a 1000-run and a 10,000-run sweep. Prints the ratios:

  * ttlaunch default / plain sbatch loop        target <= 2.0
  * ttlaunch / submitit individual              target <= 1.2 (per job)
  * 1000-run expansion + dry run                target <= 5 s
  * 10,000 runs / 1000 runs, dry run             linear is 10x

This measures queueing only; what a user waits for from launch to exit (and the seeds'
fixed 5-s delay) is benchmarks/launch_to_exit.py. Needs the cluster up
(`sudo scripts/testcluster.sh start`).

    .venv/bin/python benchmarks/submission.py [--runs 50] [--quick]

`--quick` (what the test suite runs): 3 runs, dry runs of 20 and 200.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import submitit

# Expansion and dry run (every sbatch script written, nothing queued) at these sizes.
DRY_RUN_SIZES = (1000, 10000)
QUICK_DRY_RUN_SIZES = (20, 200)
PRESET = ["compute=testcluster/cpu_1x", "hydra.callbacks.monitor.poll_interval_s=1", "payload=command", "payload.command=[sleep,'0']"]


def as_installed() -> None:
    """ttlaunch's bytecode compiled, as pip compiles an installed wheel's (and hydra-submitit-launcher's)."""
    subprocess.run([sys.executable, str(Path(__file__).parents[1] / "scripts" / "bytecode.py")], check=True)


def drain() -> None:
    """Wait until none of this user's jobs are queued, so measurements do not overlap."""
    while subprocess.run(["squeue", "-h", "--me"], capture_output=True, text=True, check=True).stdout.strip():
        time.sleep(1)


def plain_sbatch_loop(workdir: Path, runs: int) -> float:
    scripts = []
    for index in range(runs):
        script = workdir / f"plain_{index}.sh"
        script.write_text(
            "#!/bin/bash\n#SBATCH --partition=debug\n#SBATCH --mem=1G\n#SBATCH --time=10\n"
            f"#SBATCH --job-name=plain_{index}\n#SBATCH --output=/dev/null\ntrue\n"
        )
        scripts.append(script)
    start = time.perf_counter()
    for script in scripts:
        subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, check=True)
    return time.perf_counter() - start


def submitit_submits(workdir: Path, runs: int, batch: bool) -> float:
    executor = submitit.AutoExecutor(folder=workdir / ("batch" if batch else "individual"), cluster="slurm")
    executor.update_parameters(slurm_partition="debug", mem_gb=1, timeout_min=10)
    start = time.perf_counter()
    if batch:
        with executor.batch():
            for _ in range(runs):
                executor.submit(int)
    else:
        for _ in range(runs):
            executor.submit(int)
    return time.perf_counter() - start


def experiment_dir(workdir: Path, runs: int, name: str) -> Path:
    config_dir = workdir / f"configs_{name}"
    (config_dir / "experiment").mkdir(parents=True)
    lines = "\n".join(f"  - {{name: r{index:04d}, type: fine-tuned}}" for index in range(runs))
    (config_dir / "experiment" / f"{name}.yaml").write_text(f"experiment: {{name: {name}}}\nruns:\n{lines}\n")
    return config_dir


def ttlaunch(workdir: Path, config_dir: Path, name: str, *overrides: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "ttlaunch.launch", "--config-dir", str(config_dir), f"experiment={name}",
        *overrides, f"paths.work_root={workdir / 'sweeps'}",
    ]
    return subprocess.run(command, capture_output=True, text=True, cwd=workdir)


def ttlaunch_submission(workdir: Path, runs: int, label: str, *overrides: str) -> float:
    name = f"bench_{label}"
    result = ttlaunch(workdir, experiment_dir(workdir, runs, name), name, *PRESET, *overrides)
    if result.returncode != 0:
        raise SystemExit(f"ttlaunch ({label}) failed:\n{result.stderr[-2000:]}")
    log = (workdir / "sweeps" / "ttlaunch_sweeps" / name / "run-torchtune.log").read_text()
    return float(re.search(r"ALL_SUBMITTED.*?\nDuration: ([0-9.]+)s", log, flags=re.S).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="3 runs, dry runs of 20 and 200 (the test suite's run)")
    args = parser.parse_args()
    if subprocess.run(["scontrol", "ping"], capture_output=True).returncode != 0:
        raise SystemExit("the test cluster is not up: sudo scripts/testcluster.sh start")
    as_installed()
    runs = 3 if args.quick else args.runs
    small, large = sizes = QUICK_DRY_RUN_SIZES if args.quick else DRY_RUN_SIZES
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ttlaunch-bench-") as scratch:
        workdir = Path(scratch)
        workdir.chmod(0o755)
        measures = [
            ("plain sbatch loop", lambda: plain_sbatch_loop(workdir, runs)),
            ("submitit individual", lambda: submitit_submits(workdir, runs, batch=False)),
            ("submitit batch", lambda: submitit_submits(workdir, runs, batch=True)),
            ("ttlaunch default", lambda: ttlaunch_submission(workdir, runs, "default")),
            ("ttlaunch one at a time", lambda: ttlaunch_submission(
                workdir, runs, "serial", "stagger=fixed_delay", "stagger.seconds=0")),
        ]
        for label, measure in measures:
            drain()
            seconds[label] = measure()
            print(f"{label:26s} {runs} runs queued in {seconds[label]:7.2f} s ({1000 * seconds[label] / runs:6.1f} ms/run)")
        drain()
        dry_run: dict[int, float] = {}
        for size in sizes:
            name = f"bench_dry{size}"
            config_dir = experiment_dir(workdir, size, name)
            start = time.perf_counter()
            result = ttlaunch(workdir, config_dir, name, "compute=killarney/h100_1x", "hydra.launcher.dry_run=true")
            dry_run[size] = time.perf_counter() - start
            if result.returncode != 0:
                raise SystemExit(f"dry run failed:\n{result.stderr[-2000:]}")
            scripts = len(list((workdir / "sweeps" / "ttlaunch_sweeps" / name / "dry_run").glob("*.sbatch")))
            label = f"{size}-run expansion + dry run"
            print(f"{label:26s} {scripts} scripts in {dry_run[size]:7.2f} s (whole command)", flush=True)
    print()
    print(f"ttlaunch default / plain sbatch loop:      {seconds['ttlaunch default'] / seconds['plain sbatch loop']:.2f}x (target <= 2.00x)")
    print(f"ttlaunch one at a time / submitit individual: {seconds['ttlaunch one at a time'] / seconds['submitit individual']:.2f}x per job (target <= 1.20x)")
    print(f"{small}-run expansion + dry run:              {dry_run[small]:.2f} s{' (target <= 5 s)' if small == 1000 else ''}")
    print(f"{large} runs / {small} runs, dry run:          {dry_run[large] / dry_run[small]:.1f}x (linear: {large // small}x)")


if __name__ == "__main__":
    main()
