"""Start-up cost of `python -m ttlaunch.launch --help` beside a bare Hydra app's `--help`.

Hydra imports every module under `hydra_plugins` at start, ours included, so both apps pay
for plugin discovery; the ratio shows what ttlaunch adds. Target: <= 1.3x.

    .venv/bin/python benchmarks/startup.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE_APP = """
import hydra

@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg):
    pass

if __name__ == "__main__":
    main()
"""


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as scratch:
        cwd = Path(scratch)
        (cwd / "bare_app.py").write_text(BARE_APP)
        commands = {
            "bare hydra --help": [sys.executable, "bare_app.py", "--help"],
            "ttlaunch --help": [sys.executable, "-m", "ttlaunch.launch", "--help"],
        }
        for command in commands.values():  # warm the file cache
            timed(command, cwd)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(rounds):  # interleaved, so machine noise hits both alike
            for name, command in commands.items():
                samples[name].append(timed(command, cwd))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, value in medians.items():
        print(f"{name:20s} median {value * 1000:7.1f} ms  (min {min(samples[name]) * 1000:.1f} ms, {rounds} rounds)")
    ratio = medians["ttlaunch --help"] / medians["bare hydra --help"]
    print(f"ratio ttlaunch / bare hydra: {ratio:.2f}x (target <= 1.30x)")


if __name__ == "__main__":
    main()
