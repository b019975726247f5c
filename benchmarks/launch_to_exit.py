"""What a user waits for, from the launch command's start to its exit, side by side in one run.

For N trivial runs (default 50; each payload only touches a file) on the project's test
cluster:

  * hydra-submitit-launcher: one blocking array sweep (`hydra/launcher=submitit_slurm`) of a
    plain Hydra app;
  * the same app and command with the one override `hydra/launcher=ttlaunch_slurm`;
  * ttlaunch with its default stagger hook and its default poll interval (60 s on SLURM);
  * ttlaunch with the seeds' fixed 5-s delay between submissions (`--skip-slow` leaves it out:
    it takes about N x 5 s).

Per launcher: time to all submitted (the newest `Submit` time in sacct, whole seconds), to
all payloads started (the newest start file), to the command's exit, the CPU time spent
inside each job (sacct's TotalCPU summed over the job's steps, the mean over its jobs), and
how many times it ran `squeue` and `sacct` (counted by wrappers on PATH that run the real
commands). The launchers take turns for `--rounds` rounds (3): on 2 cores one launch to exit
varies by a quarter from run to run, so the ratios are of medians. A job's CPU time in a
sweep varies by a fifth from round to round with what else runs on the 2 cores (the other
jobs, the launcher), so one job of each launcher is then also run again alone, as srun
starts it, the launchers taking turns `--reruns` times (20). Prints:

  * ttlaunch default, launch to exit / hydra-submitit-launcher     target <= 1.0x
  * ttlaunch default, CPU per job / hydra-submitit-launcher        target <= 1.0x
    (in the sweep, and run again alone)
  * ttlaunch default, squeue calls                                  target <= 1 per 60 s + 3
  * the same app with ttlaunch_slurm / hydra-submitit-launcher, both ratios

Needs the cluster up (`sudo scripts/testcluster.sh start`).

    .venv/bin/python benchmarks/launch_to_exit.py [--runs 50] [--rounds 3] [--reruns 20] [--skip-slow] [--quick]

`--quick` (what the test suite runs): 3 runs, one round, one rerun, no fixed delay.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from submission import as_installed, drain, experiment_dir

from ttlaunch.scheduler.figure_readers import duration

COUNTED = ("squeue", "sacct")
# A plain Hydra app for hydra-submitit-launcher: its task touches a file in its job dir.
HYDRA_APP = textwrap.dedent(
    """
    from pathlib import Path

    import hydra
    from hydra.core.hydra_config import HydraConfig


    @hydra.main(version_base=None, config_path=None, config_name=None)
    def main(cfg):
        (Path(HydraConfig.get().runtime.output_dir) / "started").touch()


    if __name__ == "__main__":
        main()
    """
)
# The same payload for ttlaunch: touch, as a command (the job's own wrapper runs it).
TTLAUNCH_PAYLOAD = ["compute=testcluster/cpu_1x", "payload=command", "payload.command=[touch,'{job_dir}/started']"]


@dataclass
class Measured:
    submitted_s: float
    started_s: float
    exit_s: float
    cpu_per_job_s: float
    calls: dict[str, int]
    job: Path  # one of its jobs' submitit pickle, to run it again alone


def job_environment(submitted: Path) -> dict[str, str]:
    """The environment SLURM gives the job whose `<id>_submitted.pkl` this is (one task on one
    node; an array task's id is <array id>_<index>)."""
    job_id = submitted.name.removesuffix("_submitted.pkl")
    array_id, _, index = job_id.partition("_")
    env = {
        **os.environ, "SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": array_id, "SLURM_NTASKS": "1", "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_JOB_NODELIST": "localhost", "SLURM_JOB_NUM_NODES": "1",
        "SLURM_NNODES": "1",
    }
    if index:
        env.update({"SLURM_ARRAY_JOB_ID": array_id, "SLURM_ARRAY_TASK_ID": index})
    return env


def rerun_cpu_s(submitted: Path) -> float:
    """The CPU time (user + system, its children included) of the job's process run again on
    its own, as srun starts it: submitit's `_submit` on the job's pickle."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-u", "-m", "submitit.core._submit", str(submitted.parent)], env=job_environment(submitted),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def rerun_alone(jobs: dict[str, Path], times: int) -> dict[str, float]:
    """Each launcher's job run again alone, the launchers taking turns `times` times: the
    median CPU time of each. On 2 cores a job's CPU time in the sweep varies by a fifth from
    round to round with what else runs; alone, by a few percent."""
    samples: dict[str, list[float]] = {label: [] for label in jobs}
    for _ in range(times):
        for label, submitted in jobs.items():
            samples[label].append(rerun_cpu_s(submitted))
    return {label: statistics.median(values) for label, values in samples.items()}


def cpu_seconds(text: str) -> float:
    """sacct's TotalCPU in seconds, fractions kept."""
    seconds = duration(text)
    if seconds is None:
        raise SystemExit(f"sacct gave TotalCPU {text!r}")
    return seconds


def cpu_per_job(job_name_prefix: str, since: float) -> float:
    """The mean CPU time spent inside the jobs whose name starts so: each job's steps'
    TotalCPU (batch, extern, srun steps) summed."""
    day = dt.datetime.fromtimestamp(since).strftime("%Y-%m-%dT%H:%M:%S")
    output = subprocess.run(
        ["sacct", "-n", "-P", "-S", day, "--format=JobID,JobName,TotalCPU"], capture_output=True, text=True, check=True
    ).stdout
    rows = [line.split("|") for line in output.splitlines() if line.count("|") == 2]
    jobs = {job_id for job_id, name, _ in rows if "." not in job_id and name.startswith(job_name_prefix)}
    totals = {job: 0.0 for job in jobs}
    for job_id, _, total in rows:
        if "." in job_id and job_id.split(".")[0] in totals:
            totals[job_id.split(".")[0]] += cpu_seconds(total)
    if not totals:
        raise SystemExit(f"sacct shows no job named {job_name_prefix}*")
    return sum(totals.values()) / len(totals)


def counting_path(workdir: Path) -> tuple[dict[str, str], Path]:
    """An environment whose squeue and sacct append a line to a file, then run the real one."""
    shims = workdir / "shims"
    shims.mkdir()
    calls = workdir / "calls.txt"
    for command in COUNTED:
        real = shutil.which(command)
        if real is None:
            raise SystemExit(f"{command} is not on PATH")
        shim = shims / command
        shim.write_text(f'#!/bin/sh\necho {command} >> "{calls}"\nexec {real} "$@"\n')
        shim.chmod(0o755)
    return {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}"}, calls


def count_calls(calls: Path) -> dict[str, int]:
    lines = calls.read_text().split() if calls.exists() else []
    calls.unlink(missing_ok=True)
    return {command: lines.count(command) for command in COUNTED}


def newest_submit(job_name_prefix: str, since: float, runs: int) -> float:
    """Seconds from `since` to the newest submission of the `runs` jobs whose name starts so
    (sacct; asked again while accounting has not recorded them all yet, as after a short sweep)."""
    day = dt.datetime.fromtimestamp(since).strftime("%Y-%m-%dT%H:%M:%S")
    for _ in range(30):
        output = subprocess.run(
            ["sacct", "-X", "-n", "-P", "-S", day, "--format=JobName,Submit"], capture_output=True, text=True, check=True
        ).stdout
        stamps = [
            dt.datetime.fromisoformat(submit).timestamp()
            for name, submit in (line.split("|") for line in output.splitlines() if "|" in line)
            if name.startswith(job_name_prefix)
        ]
        if len(stamps) >= runs:
            return max(stamps) - since
        time.sleep(1)
    raise SystemExit(f"sacct recorded {len(stamps)} of the {runs} jobs named {job_name_prefix}* submitted since {day}")


def newest_start(sweep_dir: Path, runs: int, since: float) -> float:
    starts = [path.stat().st_mtime for path in sweep_dir.rglob("started")]
    if len(starts) != runs:
        raise SystemExit(f"{len(starts)} of {runs} payloads started in {sweep_dir}")
    return max(starts) - since


def measure(command: list[str], env: dict[str, str], calls: Path, cwd: Path, label: str) -> tuple[float, float]:
    """Run the launch command; its start (epoch) and its wall time."""
    count_calls(calls)
    began, start = time.time(), time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{label} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return began, wall


def plain_app(workdir: Path, runs: int, env: dict[str, str], calls: Path, launcher: str, round_: int) -> Measured:
    """The plain Hydra app's sweep with `launcher` (the rest of the command the same)."""
    app = workdir / "plain_app.py"
    app.write_text(HYDRA_APP)
    sweep_dir = workdir / f"{launcher}_sweep{round_}"
    command = [
        sys.executable, str(app), "--multirun", f"hydra/launcher={launcher}", "hydra.launcher.partition=debug",
        "hydra.launcher.mem_gb=1", "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=10",
        "hydra.job.name=hslbench", f"hydra.sweep.dir={sweep_dir}", f"+index=range(0,{runs})",
    ]
    began, wall = measure(command, env, calls, workdir, launcher)
    # submitit names every job of the array after the app; ttlaunch names each after its overrides.
    prefix = "hslbench" if launcher == "submitit_slurm" else "index-"
    return Measured(
        newest_submit(prefix, began, runs), newest_start(sweep_dir, runs, began), wall, cpu_per_job(prefix, began),
        count_calls(calls),
        min(sweep_dir.rglob("*_submitted.pkl")),
    )


def ttlaunch(workdir: Path, runs: int, env: dict[str, str], calls: Path, label: str, round_: int, *overrides: str) -> Measured:
    name = f"bench_{label}{round_}"
    config_dir = experiment_dir(workdir, runs, name)
    command = [
        sys.executable, "-m", "ttlaunch.launch", "--config-dir", str(config_dir), f"experiment={name}",
        *TTLAUNCH_PAYLOAD, *overrides, f"paths.work_root={workdir / 'sweeps'}",
    ]
    began, wall = measure(command, env, calls, workdir, f"ttlaunch ({label})")
    sweep_dir = workdir / "sweeps" / "ttlaunch_sweeps" / name
    # ttlaunch names each job after its run: r0000, r0001, ...
    return Measured(
        newest_submit("r0", began, runs), newest_start(sweep_dir, runs, began), wall, cpu_per_job("r0", began),
        count_calls(calls),
        next(sweep_dir.glob("r0000/submitit/*_submitted.pkl")),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="launchers interleaved; the ratios are of medians")
    parser.add_argument("--skip-slow", action="store_true", help="leave out the fixed 5-s delay")
    parser.add_argument("--reruns", type=int, default=20, help="times each launcher's job is run again alone")
    parser.add_argument("--quick", action="store_true", help="3 runs, 1 round, 1 rerun, no fixed delay (the test suite's run)")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.rounds, args.reruns, args.skip_slow = 3, 1, 1, True
    if subprocess.run(["scontrol", "ping"], capture_output=True).returncode != 0:
        raise SystemExit("the test cluster is not up: sudo scripts/testcluster.sh start")
    as_installed()
    measured: dict[str, list[Measured]] = {}
    with tempfile.TemporaryDirectory(prefix="ttlaunch-bench-") as scratch:
        workdir = Path(scratch)
        workdir.chmod(0o755)
        env, calls = counting_path(workdir)
        launches: list[tuple[str, Callable[[int], Measured]]] = [
            ("hydra-submitit-launcher", lambda r: plain_app(workdir, args.runs, env, calls, "submitit_slurm", r)),
            ("same app, ttlaunch_slurm", lambda r: plain_app(workdir, args.runs, env, calls, "ttlaunch_slurm", r)),
            ("ttlaunch default", lambda r: ttlaunch(workdir, args.runs, env, calls, "default", r)),
        ]
        if not args.skip_slow:
            launches.append(("ttlaunch fixed 5-s delay", lambda r: ttlaunch(
                workdir, args.runs, env, calls, "fixed5", r, "stagger=fixed_delay", "stagger.seconds=5",
            )))
        print(f"{args.runs} trivial runs on the test cluster; seconds from the launch command's start")
        print(f"{'launcher':26s} {'round':>5s} {'submitted':>10s} {'started':>8s} {'exit':>8s} {'CPU/job':>8s} {'squeue':>7s} {'sacct':>6s}")
        for round_ in range(1, args.rounds + 1):
            for label, launch in launches:
                drain()
                result = launch(round_)
                measured.setdefault(label, []).append(result)
                print(
                    f"{label:26s} {round_:5d} {result.submitted_s:10.0f} {result.started_s:8.1f} {result.exit_s:8.1f} "
                    f"{result.cpu_per_job_s:8.2f} {result.calls['squeue']:7d} {result.calls['sacct']:6d}", flush=True,
                )
        alone = rerun_alone({label: results[-1].job for label, results in measured.items()}, args.reruns)
    exit_s = {label: statistics.median(m.exit_s for m in results) for label, results in measured.items()}
    cpu_s = {label: statistics.median(m.cpu_per_job_s for m in results) for label, results in measured.items()}
    hsl = "hydra-submitit-launcher"
    print(f"\nmedians of {args.rounds} rounds")
    for label, target in (("ttlaunch default", " (target <= 1.00x)"), ("same app, ttlaunch_slurm", "")):
        print(f"{label} / {hsl}, launch to exit: {exit_s[label] / exit_s[hsl]:.2f}x{target}")
        print(f"{label} / {hsl}, CPU per job: {cpu_s[label] / cpu_s[hsl]:.2f}x{target}")
        print(
            f"{label} / {hsl}, CPU per job run again alone: {alone[label] / alone[hsl]:.2f}x{target} "
            f"({alone[label]:.3f} s against {alone[hsl]:.3f} s, medians of {args.reruns})"
        )
    squeue = max(m.calls["squeue"] - m.exit_s / 60 - 3 for m in measured["ttlaunch default"])
    print(f"ttlaunch default, squeue calls beyond 1 per 60 s + 3: {max(0.0, squeue):.1f} at most (target 0)")
    if "ttlaunch fixed 5-s delay" in measured:
        print(f"ttlaunch fixed 5-s delay / ttlaunch default, launch to exit: {exit_s['ttlaunch fixed 5-s delay'] / exit_s['ttlaunch default']:.1f}x")


if __name__ == "__main__":
    main()
