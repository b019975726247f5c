"""Every benchmark runs, in its quick mode, and prints its figures: a change that breaks one
fails here. Whether the figures meet their targets is for the full runs, on a quiet machine."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
NUMBER = r"[0-9]+(\.[0-9]+)?"

# Each benchmark: its tier, and the lines its quick run must print (regular expressions).
FIGURES = {
    "polling.py": (pytest.mark.cli, [
        r"squeue calls per poll at N = 10, 100: 1, 1  \(must be 1\)",
        rf"CPU per steady poll at N = 100: {NUMBER} ms", rf"peak memory N = 100 / N = 10: {NUMBER}x",
        rf"jobs.json per job at N = 10 and 100: {NUMBER} and {NUMBER} KiB",
    ]),
    "startup.py": (pytest.mark.cli, [
        rf"--help, ttlaunch / bare hydra: +{NUMBER}x \(target <= 1.30x\)", rf"import, hydra \+ our plugin / hydra: +{NUMBER}x",
        rf"--cfg job, ttlaunch / bare hydra: +{NUMBER}x",
    ]),
    "local_app.py": (pytest.mark.cli, [
        rf"1 job\(s\): submitit_local {NUMBER} s, ttlaunch_local {NUMBER} s: {NUMBER}x \(median of 1\)  \(target <= 1.20x\)",
    ]),
    "submission.py": (pytest.mark.slurm, [
        rf"ttlaunch default +3 runs queued in +{NUMBER} s", rf"ttlaunch default / plain sbatch loop: +{NUMBER}x",
        rf"ttlaunch one at a time / submitit individual: {NUMBER}x per job", r"200-run expansion \+ dry run +200 scripts",
        rf"200 runs / 20 runs, dry run: +{NUMBER}x \(linear: 10x\)",
    ]),
    "launch_to_exit.py": (pytest.mark.slurm, [
        rf"ttlaunch default / hydra-submitit-launcher, launch to exit: {NUMBER}x",
        rf"same app, ttlaunch_slurm / hydra-submitit-launcher, CPU per job run again alone: {NUMBER}x",
        rf"ttlaunch default, squeue calls beyond 1 per 60 s \+ 3: {NUMBER} at most",
    ]),
    "pruning.py": (pytest.mark.torchtune, [
        rf"full +best point \S+ .*; {NUMBER} CPU-hours; 0 runs pruned",
        rf"halving +best point \S+ .*; {NUMBER} CPU-hours; [0-9] runs pruned", rf"halving / full CPU-hours: {NUMBER}x",
    ]),
    "evaluation_jobs.py": (pytest.mark.torchtune, [
        r"per task +4 evaluation jobs,  4 model loads, 4 task scores \(all of 2 checkpoints x 2 tasks\)",
        r"per checkpoint +2 evaluation jobs,  2 model loads, 4 task scores \(all of 2 checkpoints x 2 tasks\)",
        rf"per checkpoint / per task: jobs 2/4, model loads 2/4, evaluation CPU-hours {NUMBER}x",
    ]),
}


def test_every_benchmark_has_a_quick_run_here():
    assert sorted(FIGURES) == sorted(path.name for path in BENCHMARKS.glob("*.py"))


@pytest.mark.parametrize("script", [pytest.param(name, marks=tier) for name, (tier, _) in FIGURES.items()])
def test_a_benchmark_prints_its_figures_in_its_quick_mode(script: str, tmp_path: Path, request: pytest.FixtureRequest):
    if FIGURES[script][0].name == "slurm":
        request.getfixturevalue("slurm_cluster")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    ran = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    missing = [figure for figure in FIGURES[script][1] if not re.search(figure, ran.stdout)]
    assert not missing, f"{script} --quick printed:\n{ran.stdout}"
