"""What runs inside a job: find the run, build its payload, run it (GPUs sampled meanwhile),
fail when it fails."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from ttlaunch.composed import read_inputs
from ttlaunch.errors import PayloadFailed
from ttlaunch.gpu_metrics import gpu_sampler
from ttlaunch.payload import build_payload

log = logging.getLogger(__name__)

# How long the payload gets to exit after SIGTERM before it is killed.
TERMINATE_GRACE_S = 30.0


def start_command(argv: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start one command with the job's stdout/stderr."""
    log.info("running: %s", " ".join(argv))
    # `tune` and `python` are those of the job's interpreter, even without an activated venv.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return subprocess.Popen(list(argv), env={**os.environ, "PATH": path, **env}, preexec_fn=_ignore_time_limit_warning)


def _ignore_time_limit_warning() -> None:
    """In the command, before it starts: SLURM's time-limit warning (USR2, sent to every
    process of the job) is for the wrapper to act on; by default it would kill the command."""
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def stop_command(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, a grace period to exit, then SIGKILL."""
    process.terminate()
    try:
        process.wait(timeout=TERMINATE_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def finish_command(process: subprocess.Popen[bytes], run_name: str) -> None:
    """Wait for a started command; raise PayloadFailed on a non-zero exit.

    If the job itself is interrupted, the command is stopped too: no orphan keeps training.
    """
    try:
        code = process.wait()
    except BaseException:
        stop_command(process)
        raise
    if code != 0:
        raise PayloadFailed(run_name, code, [str(arg) for arg in process.args])


def run_command(argv: Sequence[str], env: Mapping[str, str], run_name: str) -> None:
    finish_command(start_command(argv, env), run_name)


def run_to_the_time_limit() -> None:
    """requeue=off: let the job run on when SLURM warns of its time limit.

    submitit answers the warning signal of a job it cannot requeue by failing it at once:
    the last minutes of training would be lost and the job recorded FAILED. Without requeue,
    the payload runs until SLURM stops it, and SLURM records TIMEOUT.
    """
    if "SLURM_JOB_ID" not in os.environ:
        return

    def keep_running(signum: int, frame: object) -> None:
        log.warning("time limit near (signal %s); requeue is off: running on until SLURM stops the job", signum)

    signal.signal(signal.SIGUSR2, keep_running)


def run_task(cfg: DictConfig) -> None:
    """The Hydra task function: one run of the experiment, in its own job dir."""
    hydra_cfg = HydraConfig.get()
    inputs = read_inputs(cfg, hydra_cfg)
    run = inputs.experiment.run(cfg.run_name)
    job_dir = Path(hydra_cfg.runtime.output_dir)
    command = build_payload(inputs.experiment, run, inputs.payload, job_dir, inputs.payload_source)
    command.output_dir.mkdir(parents=True, exist_ok=True)
    if not inputs.requeue.enabled:
        run_to_the_time_limit()
    stagger = instantiate(hydra_cfg.launcher.stagger)
    with gpu_sampler(job_dir):
        payload = None
        try:
            with stagger.startup_window(Path(hydra_cfg.sweep.dir)):
                for setup in command.setup:
                    run_command(setup, command.env, run.name)
                payload = start_command(command.argv, command.env)
        except BaseException:
            if payload is not None:  # interrupted during the start-up window: stop it too
                stop_command(payload)
            raise
        finish_command(payload, run.name)
