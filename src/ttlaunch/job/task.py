"""What runs inside a job: find the run, decide from disk where this attempt starts, take
part in the sweep's one-time preparation, run the payload (GPUs sampled meanwhile; SLURM's
end warning handled: ttlaunch.job.signals), fail when it fails."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from ttlaunch.base.errors import PayloadFailed
from ttlaunch.inputs.composed import LaunchInputs, read_inputs
from ttlaunch.inputs.evaluation_plan import (
    EVAL_CONFIG_NAME,
    TARGET_KEY,
    EvaluationTarget,
    checkpoint_of,
    cruijff_evaluation,
    evaluation_command,
    own_caches,
)
from ttlaunch.inputs.frozen import copies_of, task_copy
from ttlaunch.inputs.payload import PayloadCommand
from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.inputs.summary import Run
from ttlaunch.inputs.torchtune_configs import model_dir
from ttlaunch.job.failure import PAYLOAD_EXIT
from ttlaunch.job.gpu_sampler import gpu_sampler
from ttlaunch.job.payload_kinds import JobPayload, attempt_command, distributed, job_payload
from ttlaunch.job.preparation import job_label, prepare_all
from ttlaunch.job.rendezvous import agreed, rendezvous_of, task_rank
from ttlaunch.job.requeue import current_attempt
from ttlaunch.job.signals import stop_when_asked, watch_for_end_warning
from ttlaunch.job.stagger import hook_or_default
from ttlaunch.records.checkpoints import loadable
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


def _command_of_job(
    cfg: DictConfig, inputs: LaunchInputs, run: Run, job_dir: Path, sweep_dir: Path
) -> tuple[PayloadCommand, JobPayload]:
    """The training payload of the run and its kind's ways (torchtune, command), or, for an
    evaluation job, its evaluation command (kind evaluation)."""
    target = cfg.get(TARGET_KEY)
    if target is None:
        return inputs.payload_for(run.name, job_dir), job_payload(inputs.payload_kind)
    evaluation = EvaluationTarget(run.name, str(target.task), None if target.epoch is None else int(target.epoch))
    if evaluation.epoch is None:  # a control's base model, an eval-only run's checkpoint
        saved = inputs.experiment.given_model(run)
        run_output_dir = saved.parent
        base_model = inputs.experiment.base_models.get(run.model or "")
    else:
        # The run's own output dir (its checkpoints), not this evaluation job's, as its job has it.
        training = replace(inputs, copies=copies_of(sweep_dir / run.name)).payload_for(run.name, sweep_dir / run.name)
        run_output_dir = training.output_dir
        saved = checkpoint_of(inputs.evaluation, evaluation, run_output_dir)
        trained_from = model_dir(training.argv) if inputs.payload_kind is PayloadKind.TORCHTUNE else None
        base_model = Path(trained_from) if trained_from else None
    task = inputs.experiment.evaluation_task(evaluation.task)
    copy = task_copy(sweep_dir, task.name, task.script) if task.script is not None else None
    if copy is not None and copy.is_file():  # the sweep's copy
        task = replace(task, script=copy)
    options: tuple[str, ...] = ()
    if task.dataset is not None:  # cruijff_kit's shape: the task reads its settings from eval.yaml
        options, eval_config = cruijff_evaluation(inputs.experiment, run, task, evaluation, job_dir)
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / EVAL_CONFIG_NAME).write_text(yaml.safe_dump(eval_config, sort_keys=False), encoding="utf-8")
    command = evaluation_command(
        inputs.evaluation, evaluation, run_output_dir, job_dir, task, base_model,
        {**inputs.experiment.controls, **run.parameters}, options, loadable(saved, job_dir / "checkpoint"),
        inputs.experiment.evaluation_settings,
    )
    return replace(command, env={**own_caches(job_dir, os.environ), **command.env}), job_payload(PayloadKind.EVALUATION)


def run_task(cfg: DictConfig) -> None:
    """The Hydra task function: one attempt of one run of the experiment, in its job dir.

    In a job of several tasks every task runs it: task 0 decides where the attempt starts
    (the others act on its decision), each starts its part of the distributed trainer
    (ttlaunch.job.rendezvous), each samples its node's GPUs, and only task 0 requeues."""
    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    attempt = current_attempt()
    on_slurm = "SLURM_JOB_ID" in os.environ
    rank = task_rank() if on_slurm else 0
    end_warning = watch_for_end_warning(job_dir, attempt, rank) if on_slurm else None
    if not on_slurm:
        stop_when_asked()
    inputs = replace(read_inputs(cfg, hydra_cfg), copies=copies_of(job_dir))  # the run's files as submitted
    run = inputs.run(cfg.run_name)
    built, job_kind = _command_of_job(cfg, inputs, run, job_dir, Path(hydra_cfg.sweep.dir))
    built.output_dir.mkdir(parents=True, exist_ok=True)
    rendezvous = rendezvous_of(os.environ, slurm.hostnames) if on_slurm else None
    if rendezvous is None:
        state = job_kind.resume_state(built, attempt)
    else:
        decision = job_dir / f".attempt-{os.environ['SLURM_JOB_ID']}-{attempt}.json"
        state = agreed(decision, rank, lambda: job_kind.resume_state(built, attempt))
    prepared = attempt_command(built, job_kind, attempt, state)
    if prepared is None:
        log.info("%s: the final epoch is saved already; nothing to train (COMPLETED)", run.name)
        return
    command = distributed(prepared, job_kind, inputs.payload.torchrun, rendezvous, inputs.compute_for(run.name).gpus)
    stagger = hook_or_default(instantiate(hydra_cfg.launcher.stagger))
    sweep_dir = Path(hydra_cfg.sweep.dir)
    with gpu_sampler(job_dir, rank):
        # What every job would otherwise build at once on the shared filesystem, the first
        # job builds while the others wait (ttlaunch.job.preparation).
        steps = job_kind.preparation(command, lambda argv, env: run_command(argv, env, run.name))
        prepare_all(sweep_dir, steps, job_label(run.name))
        payload = None
        try:
            with stagger.startup_window(sweep_dir):
                for setup in command.setup:
                    run_command(setup, command.env, run.name)
                payload = start_command(command.argv, command.env, command.cwd, own_group=command.runs_script)
            if end_warning is not None:
                end_warning.attach(lambda grace_s: stop_command(payload, grace_s))
        except BaseException:
            if payload is not None:  # interrupted during the start-up window: stop it too
                stop_command(payload)
            raise
        finish_command(payload, run.name, end_warning.act if end_warning else None)
