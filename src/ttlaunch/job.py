"""What runs inside a job: find the run, build its payload, run it, fail when it fails."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ttlaunch.composed import read_inputs
from ttlaunch.errors import PayloadFailed
from ttlaunch.payload import build_payload

log = logging.getLogger(__name__)

# How long the payload gets to exit after SIGTERM before it is killed.
TERMINATE_GRACE_S = 30.0


def run_command(argv: Sequence[str], env: Mapping[str, str], run_name: str) -> None:
    """Run one command with the job's stdout/stderr; raise PayloadFailed on a non-zero exit.

    If the job itself is interrupted, the command is stopped too: no orphan keeps training.
    """
    log.info("running: %s", " ".join(argv))
    # `tune` and `python` are those of the job's interpreter, even without an activated venv.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    process = subprocess.Popen(list(argv), env={**os.environ, "PATH": path, **env})
    try:
        code = process.wait()
    except BaseException:
        process.terminate()
        try:
            process.wait(timeout=TERMINATE_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        raise
    if code != 0:
        raise PayloadFailed(run_name, code, list(argv))


def run_task(cfg: DictConfig) -> None:
    """The Hydra task function: one run of the experiment, in its own job dir."""
    hydra_cfg = HydraConfig.get()
    inputs = read_inputs(cfg, hydra_cfg)
    run = inputs.experiment.run(cfg.run_name)
    job_dir = Path(hydra_cfg.runtime.output_dir)
    command = build_payload(inputs.experiment, run, inputs.payload, job_dir, inputs.payload_source)
    command.output_dir.mkdir(parents=True, exist_ok=True)
    for setup in command.setup:
        run_command(setup, command.env, run.name)
    run_command(command.argv, command.env, run.name)
