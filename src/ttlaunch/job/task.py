"""What runs inside a job: its plan (what its launch worked out: ttlaunch.job.job_plan, else
from its inputs), where this attempt starts (decided from disk), its part in the sweep's
one-time preparation, the payload (GPUs sampled meanwhile; SLURM's end warning handled:
ttlaunch.job.signals), failing when it fails."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping, Sequence, cast

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from ttlaunch.base.errors import PayloadFailed
from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.job.failure import PAYLOAD_EXIT
from ttlaunch.job.gpu_sampler import gpu_sampler
from ttlaunch.job.job_payloads import attempt_command, distributed, job_payload
from ttlaunch.job.job_plan import JobPlan, load_plan
from ttlaunch.job.preparation import job_label, prepare_all
from ttlaunch.job.rendezvous import agreed, rendezvous_of, task_rank
from ttlaunch.job.requeue import current_attempt
from ttlaunch.job.resume import ResumeAction
from ttlaunch.job.signals import stop_when_asked, watch_for_end_warning
from ttlaunch.job.stagger import hook_or_default
from ttlaunch.job.tracker import tracker_env
from ttlaunch.records.tracker_file import keep_tracker, read_tracker
from ttlaunch.scheduler import slurm

log = logging.getLogger(__name__)

# How long the payload gets to exit after SIGTERM before it is killed.
TERMINATE_GRACE_S = 30.0
# How often a job that watches for SLURM's end warning looks up from waiting for its payload.
WAIT_TICK_S = 1.0


def start_command(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None, own_group: bool = False
) -> subprocess.Popen[bytes]:
    """Start one command with the job's stdout/stderr. `own_group`: in a process group of
    its own, which stop_command signals whole (a shell script and the trainer it runs)."""
    shown = [*argv[:2], "<script>", *argv[3:]] if list(argv[1:2]) == ["-c"] else argv  # a script's text is long
    log.info("running: %s", " ".join(shown))
    # `tune` and `python` are those of the job's interpreter, even without an activated venv.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return subprocess.Popen(
        list(argv), env={**os.environ, "PATH": path, **env}, cwd=cwd,
        preexec_fn=_in_own_group if own_group else _ignore_time_limit_warning,
    )


def _ignore_time_limit_warning() -> None:
    """In the command, before it starts: SLURM's time-limit warning (USR2, sent to every
    process of the job) is for the wrapper to act on; by default it would kill the command."""
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def _in_own_group() -> None:
    _ignore_time_limit_warning()
    os.setpgid(0, 0)


def stop_command(process: subprocess.Popen[bytes], grace_s: float = TERMINATE_GRACE_S) -> None:
    """SIGTERM, a grace period to exit, then SIGKILL; to its whole process group when it
    leads one (a shell would die and leave its trainer running)."""
    if process.poll() is not None:
        return

    def send(signum: int) -> None:
        try:
            if os.getpgid(process.pid) == process.pid:
                os.killpg(process.pid, signum)
            else:
                process.send_signal(signum)
        except ProcessLookupError:  # exited meanwhile
            pass

    send(signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait()


def finish_command(
    process: subprocess.Popen[bytes], run_name: str, between_waits: Callable[[], None] | None = None
) -> None:
    """Wait for a started command; raise PayloadFailed on a non-zero exit.

    `between_waits`, if given, runs every WAIT_TICK_S while the command runs. If the job
    itself is interrupted, the command is stopped too: no orphan keeps training.
    """
    try:
        while True:
            try:
                code = process.wait(timeout=WAIT_TICK_S if between_waits else None)
                break
            except subprocess.TimeoutExpired:
                assert between_waits is not None
                between_waits()
    except BaseException:
        stop_command(process)
        raise
    if code != 0:
        # Marks where the payload's output ends and the wrapper's traceback begins (ttlaunch.job.failure).
        print(f"{PAYLOAD_EXIT} {code}", file=sys.stderr, flush=True)
        argv = process.args if isinstance(process.args, (list, tuple)) else [process.args]
        raise PayloadFailed(run_name, code, [str(arg) for arg in argv])


def run_command(argv: Sequence[str], env: Mapping[str, str], run_name: str) -> None:
    finish_command(start_command(argv, env), run_name)


def tracked(plan: JobPlan, job_dir: Path, env: Mapping[str, str], rank: int) -> dict[str, str]:
    """What a training job's payload is told of its point's tracker run (ttlaunch.job.tracker):
    task 0 keeps the identity; the other tasks read it (their trainers log nothing)."""
    run = keep_tracker(job_dir, plan.experiment, plan.run_name, plan.parameters) if rank == 0 else read_tracker(job_dir)
    return tracker_env(run, job_dir, {**os.environ, **env}) if run is not None else {}


def run_task(cfg: DictConfig) -> None:
    """The Hydra task function: one attempt of one run of the experiment, in its job dir.

    In a job of several tasks every task runs it: task 0 decides where the attempt starts
    (the others act on its decision), each starts its part of the distributed trainer
    (ttlaunch.job.rendezvous), each samples its node's GPUs, and only task 0 requeues."""
    hydra_cfg = cast(DictConfig, HydraConfig.get())  # its schema's type; a DictConfig as every reader takes it
    job_dir = Path(hydra_cfg.runtime.output_dir)
    attempt = current_attempt()
    on_slurm = "SLURM_JOB_ID" in os.environ
    rank = task_rank() if on_slurm else 0
    end_warning = watch_for_end_warning(job_dir, attempt, rank) if on_slurm else None
    if not on_slurm:
        stop_when_asked()
    plan = load_plan(job_dir)  # as its launch worked it out
    if plan is None:
        # The input readers load only in a job that works its own plan out.
        from ttlaunch.job.plan_from_inputs import plan_from_inputs

        plan = plan_from_inputs(cfg, hydra_cfg, job_dir)
    run_name, built, job_kind = plan.run_name, plan.command, job_payload(plan.kind)
    built.output_dir.mkdir(parents=True, exist_ok=True)
    rendezvous = rendezvous_of(os.environ, slurm.hostnames) if on_slurm else None
    if rendezvous is None:
        state = job_kind.resume_state(built, attempt)
    else:
        decision = job_dir / f".attempt-{os.environ['SLURM_JOB_ID']}-{attempt}.json"
        state = ResumeAction(agreed(decision, rank, lambda: job_kind.resume_state(built, attempt).value))
    prepared = attempt_command(built, job_kind, attempt, state)
    if prepared is None:
        log.info("%s: the final epoch is saved already; nothing to train (COMPLETED)", run_name)
        return
    command = distributed(prepared, job_kind, plan.torchrun, rendezvous, plan.gpus)
    # The payload's alone: the sweep's preparation is keyed by what its commands are given.
    tracking = tracked(plan, job_dir, command.env, rank) if plan.kind is not PayloadKind.evaluation else {}
    stagger = hook_or_default(instantiate(hydra_cfg.launcher.stagger))
    sweep_dir = Path(hydra_cfg.sweep.dir)
    with gpu_sampler(job_dir, rank):
        # What every job would otherwise build at once on the shared filesystem, the first
        # job builds while the others wait (ttlaunch.job.preparation).
        steps = job_kind.preparation(command, lambda argv, env: run_command(argv, env, run_name))
        prepare_all(sweep_dir, steps, job_label(run_name))
        payload = None
        try:
            with stagger.startup_window(sweep_dir):
                for setup in command.setup:
                    run_command(setup, command.env, run_name)
                payload = start_command(
                    command.argv, job_kind.started_env({**command.env, **tracking}, plan.gpus), command.cwd,
                    own_group=command.runs_script,
                )
            if end_warning is not None:
                end_warning.attach(lambda grace_s: stop_command(payload, grace_s))
        except BaseException:
            if payload is not None:  # interrupted during the start-up window: stop it too
                stop_command(payload)
            raise
        finish_command(payload, run_name, end_warning.act if end_warning else None)
