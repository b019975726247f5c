"""Start-up cost of ttlaunch beside a bare Hydra app, measured side by side in one run.

1. `python -m ttlaunch.launch --help` vs the bare app's `--help` (target <= 1.3x). ttlaunch
   prints its own help page from the config tree; Hydra's generic page (--hydra-help)
   composes and walks every config group ~90 times, which is why ttlaunch replaces it.
2. What Hydra's plugin discovery pays for our plugin: importing `hydra` plus every module of
   hydra_plugins.ttlaunch_launcher, vs importing `hydra` alone.
3. Composing a real launch config (`experiment=demo --cfg job`) vs the bare app's `--cfg job`:
   information, not a target (ttlaunch composes 5 config groups, the bare app none).

    .venv/bin/python benchmarks/startup.py [--rounds 15] [--quick]

`--quick` (what the test suite runs): one round.
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
    parser.add_argument("--quick", action="store_true", help="one round (the test suite's run)")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    with tempfile.TemporaryDirectory() as scratch:
        cwd = Path(scratch)
        (cwd / "bare_app.py").write_text(BARE_APP)
        plugin_modules = ", ".join(
            f"hydra_plugins.ttlaunch_launcher.{name}" for name in ("config", "launcher", "sweeper", "experiment_dirs", "app_groups")
        )
        commands = {
            "bare hydra --help": [sys.executable, "bare_app.py", "--help"],
            "ttlaunch --help": [sys.executable, "-m", "ttlaunch.launch", "--help"],
            "import hydra": [sys.executable, "-c", "import hydra"],
            "import hydra + plugin": [sys.executable, "-c", f"import hydra, {plugin_modules}"],
            "bare hydra --cfg job": [sys.executable, "bare_app.py", "--cfg", "job"],
            "ttlaunch --cfg job": [sys.executable, "-m", "ttlaunch.launch", "experiment=demo", "--cfg", "job"],
        }
        for command in commands.values():  # warm the file cache
            timed(command, cwd)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(rounds):  # interleaved, so machine noise hits both alike
            for name, command in commands.items():
                samples[name].append(timed(command, cwd))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, value in medians.items():
        print(f"{name:22s} median {value * 1000:7.1f} ms  (min {min(samples[name]) * 1000:.1f} ms, {rounds} rounds)")
    def ratio(a: str, b: str) -> float:
        return medians[a] / medians[b]

    print(f"--help, ttlaunch / bare hydra:          {ratio('ttlaunch --help', 'bare hydra --help'):.2f}x (target <= 1.30x)")
    print(f"import, hydra + our plugin / hydra:     {ratio('import hydra + plugin', 'import hydra'):.2f}x")
    print(f"--cfg job, ttlaunch / bare hydra:       {ratio('ttlaunch --cfg job', 'bare hydra --cfg job'):.2f}x (information)")


if __name__ == "__main__":
    main()
