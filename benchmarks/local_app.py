"""What a user of any Hydra app waits for on their own machine: a plain app's sweep from the
command's start to its exit with `hydra/launcher=submitit_local` and with `ttlaunch_local`,
the command otherwise the same, measured side by side (rounds interleaved, medians). Target
for a 1-job sweep: ttlaunch_local <= 1.2x submitit_local.

    .venv/bin/python benchmarks/local_app.py [--rounds 7] [--jobs 1 4] [--quick]

`--quick` (what the test suite runs): one round of the 1-job sweep.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from submission import as_installed

# A plain Hydra app whose task does nothing: what is measured is the launcher.
APP = """
import hydra

@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg):
    return 0

if __name__ == "__main__":
    main()
"""
LAUNCHERS = ("submitit_local", "ttlaunch_local")
TARGET = "  (target <= 1.20x)"


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--quick", action="store_true", help="one round of 1 job (the test suite's run)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.jobs = 1, [1]
    as_installed()
    with tempfile.TemporaryDirectory() as scratch:
        cwd = Path(scratch)
        (cwd / "app.py").write_text(APP)
        for jobs in args.jobs:
            seconds: dict[str, list[float]] = {launcher: [] for launcher in LAUNCHERS}
            for round_ in range(args.rounds):
                for launcher in LAUNCHERS:
                    sweep = cwd / f"{launcher}_{jobs}_{round_}"
                    command = [
                        sys.executable, "app.py", "--multirun", f"hydra/launcher={launcher}",
                        f"hydra.sweep.dir={sweep}", f"+index=range(0,{jobs})",
                    ]
                    seconds[launcher].append(timed(command, cwd))
            medians = {launcher: statistics.median(values) for launcher, values in seconds.items()}
            print(
                f"{jobs} job(s): submitit_local {medians['submitit_local']:.2f} s, ttlaunch_local "
                f"{medians['ttlaunch_local']:.2f} s: {medians['ttlaunch_local'] / medians['submitit_local']:.2f}x "
                f"(median of {args.rounds}){TARGET if jobs == 1 else ''}"
            )


if __name__ == "__main__":
    main()
