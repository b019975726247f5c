"""The monitor's cost per poll, on recorded squeue/sacct output, measured side by side.

For N = 10, 100, 1000 and 10,000 jobs of one sweep (in a queue that also holds 200 jobs of
other sweeps): the scheduler commands one poll runs, the CPU time of a steady poll (nothing
changed: the common case) and of a poll in which every job changed, the size of jobs.json
and the time to write it (atomically, as every poll that changes something does), and, each
N in a fresh process, the monitor's peak memory (max RSS) after 20 polls. Scheduler commands answer
from recorded text through ttlaunch.scheduler.slurm.execute, the one place that runs them, so only the
monitor's own work is measured. Prints:

  * squeue calls per poll at every N                 must be 1
  * CPU per steady poll at N = 1000                  target <= 20 ms
  * peak memory at N = 1000 / at N = 10              target <= 1.5x

    .venv/bin/python benchmarks/polling.py [--quick]

`--quick` (what the test suite runs: seconds): N = 10 and 100, 2 polls each, the targets at N = 100.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = (10, 100, 1000, 10000)
QUICK_SIZES = (10, 100)
# The N the targets are stated at (the largest quick one, --quick).
TARGET_N = 1000
POLLS = 20
OTHER_JOBS = 200
FIRST_ID = 100000


def recorded_output(jobs: int) -> tuple[str, str]:
    """squeue and sacct text for a sweep of `jobs` jobs: 40% running, 40% pending, 20% ended
    (and so only in sacct); the queue also holds other sweeps' jobs."""
    squeue_lines, sacct_lines = [], []
    for offset in range(jobs):
        job_id, name = FIRST_ID + offset, f"rank{offset}_lr1e-5"
        if offset % 5 < 2:
            squeue_lines.append(f"{job_id}|RUNNING|0|{name}")
        elif offset % 5 < 4:
            squeue_lines.append(f"{job_id}|PENDING|0|{name}")
        else:
            sacct_lines.append(
                f"{job_id}|{name}|COMPLETED|0:0|2026-11-23T10:00:00|2026-11-23T10:01:00|2026-11-23T10:09:02|00:08:02"
            )
    squeue_lines += [f"{FIRST_ID * 2 + n}|RUNNING|0|other{n}" for n in range(OTHER_JOBS)]
    return "\n".join(squeue_lines) + "\n", "\n".join(sacct_lines) + "\n"


def sweep_monitor(directory: Path, jobs: int):
    from ttlaunch.inputs.schema import Executor
    from ttlaunch.monitor.settings import MonitorSettings
    from ttlaunch.monitor.sweep_monitor import Monitor
    from ttlaunch.records.jobs_file import JobRecord
    from ttlaunch.records.ledger import Ledger

    ledger = Ledger.open(directory, "bench")
    ledger.state.executor = Executor.slurm
    for offset in range(jobs):
        name = f"rank{offset}_lr1e-5"
        ledger.state.jobs[name] = JobRecord(name=name, job_id=str(FIRST_ID + offset), job_dir=str(directory / name))
    ledger.save()
    return Monitor(ledger, MonitorSettings(poll_interval_s=60, live="off"))


def answer_from(squeue_text: str, sacct_text: str, calls: list[str]):
    from ttlaunch.scheduler import slurm

    def run(argv, timeout=slurm.COMMAND_TIMEOUT_S):
        calls.append(argv[0])
        return squeue_text if argv[0] == "squeue" else sacct_text

    return run


def measure(jobs: int, polls: int = POLLS) -> dict[str, float]:
    """Calls per poll and CPU per poll for one N, in this process."""
    from ttlaunch.scheduler import slurm

    calls: list[str] = []
    slurm.execute = answer_from(*recorded_output(jobs), calls)
    with tempfile.TemporaryDirectory() as directory:
        monitor = sweep_monitor(Path(directory), jobs)
        began = time.process_time()
        monitor.poll()  # every job changes: PENDING -> RUNNING / COMPLETED, one jobs.json write
        changing_ms = (time.process_time() - began) * 1000
        first_calls = list(calls)  # (the ended jobs' compute metrics are collected between polls, not by poll())
        steady = []
        for _ in range(polls):
            began = time.process_time()
            monitor.poll()
            steady.append((time.process_time() - began) * 1000)
        writes = []
        for _ in range(5):
            began = time.perf_counter()
            monitor.ledger.save_state()
            writes.append((time.perf_counter() - began) * 1000)
        state_kib = monitor.ledger.state_path.stat().st_size / 1024
    return {
        "squeue_per_poll": first_calls.count("squeue"),
        "sacct_per_poll": first_calls.count("sacct"),
        "changing_ms": changing_ms,
        "steady_ms": statistics.median(steady),
        "state_kib": state_kib,
        "state_write_ms": statistics.median(writes),
    }


def peak_memory(jobs: int, polls: int = POLLS) -> dict[str, float]:
    """In this (fresh) process: `polls` polls of N jobs, then the max RSS in MiB."""
    from ttlaunch.scheduler import slurm

    slurm.execute = answer_from(*recorded_output(jobs), [])
    with tempfile.TemporaryDirectory() as directory:
        monitor = sweep_monitor(Path(directory), jobs)
        for _ in range(polls):
            monitor.poll()
    return {"max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--memory-of", type=int, help=argparse.SUPPRESS)  # a child measuring one N
    parser.add_argument("--quick", action="store_true", help="N = 10 and 100, 2 polls: seconds (the test suite's run)")
    args = parser.parse_args()
    sizes, target_n, polls = (QUICK_SIZES, QUICK_SIZES[-1], 2) if args.quick else (SIZES, TARGET_N, POLLS)
    if args.memory_of:
        print(json.dumps(peak_memory(args.memory_of, polls)))
        return
    print(
        f"{'N':>6} {'squeue/poll':>12} {'sacct/poll':>11} {'CPU steady poll':>16} {'CPU all-change poll':>20} {'max RSS':>9}"
        f" {'jobs.json':>10} {'its write':>10}"
    )
    results = {}
    for jobs in sizes:
        result = measure(jobs, polls)
        child = subprocess.run(
            [sys.executable, __file__, "--memory-of", str(jobs), *(["--quick"] if args.quick else [])],
            capture_output=True, text=True, check=True,
        )
        result.update(json.loads(child.stdout))
        results[jobs] = result
        print(
            f"{jobs:>6} {result['squeue_per_poll']:>12} {result['sacct_per_poll']:>11} {result['steady_ms']:>13.2f} ms"
            f" {result['changing_ms']:>17.2f} ms {result['max_rss_mib']:>5.1f} MiB"
            f" {result['state_kib']:>6.0f} KiB {result['state_write_ms']:>7.1f} ms", flush=True,
        )
    target, smallest = results[target_n], results[sizes[0]]
    print()
    print(f"squeue calls per poll at N = {', '.join(map(str, sizes))}: "
          f"{', '.join(str(results[n]['squeue_per_poll']) for n in sizes)}  (must be 1)")
    print(f"CPU per steady poll at N = {target_n}: {target['steady_ms']:.2f} ms  (target <= 20 ms)")
    print(f"peak memory N = {target_n} / N = 10: {target['max_rss_mib'] / smallest['max_rss_mib']:.3f}x  (target <= 1.5x)")
    per_job = [results[n]["state_kib"] / n for n in sizes[-2:]]
    print(f"jobs.json per job at N = {sizes[-2]} and {sizes[-1]}: {per_job[0]:.2f} and {per_job[1]:.2f} KiB (it grows linearly)")


if __name__ == "__main__":
    main()
