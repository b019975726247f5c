"""Each payload kind's ways inside a job: where an attempt starts (its resume decision), its
argv at that attempt and under torchrun, the environment it starts in, and its part of the
sweep's one-time preparation.
The task function (ttlaunch.job.task) asks the kind and never which kind it has."""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from typing import Iterator, Mapping, Protocol

from ttlaunch.base import environment
from ttlaunch.inputs.payload_command import PayloadCommand
from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.job.preparation import Preparation, Runner, command_steps, dataset_step
from ttlaunch.job.rendezvous import Rendezvous
from ttlaunch.job.resume import ResumeAction, decide_torchtune
from ttlaunch.job.trainer_hooks import MERGE_ON_COPIES, TRACKER, with_hooks

log = logging.getLogger(__name__)


class JobPayload(Protocol):
    kind: PayloadKind

    def resume_state(self, command: PayloadCommand, attempt: int) -> ResumeAction:
        """Where this attempt starts (nothing left to do, on from what earlier attempts saved,
        or anew), from what they left on disk."""
        ...

    def resumed_argv(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        """The argv of an attempt that resumes earlier work."""
        ...

    def started_argv(
        self, argv: tuple[str, ...], torchrun: bool, rendezvous: Rendezvous | None, gpus: int
    ) -> tuple[str, ...]:
        """The argv as this task starts it (`torchrun`: payload.torchrun; `rendezvous`: where
        the tasks of a several-task job meet)."""
        ...

    def started_env(self, env: Mapping[str, str], gpus: int) -> Mapping[str, str]:
        """The environment the payload itself starts in (not its setup or preparation), on
        `gpus` GPUs per node."""
        ...

    def preparation(self, command: PayloadCommand, run: Runner) -> Iterator[Preparation]:
        """Its steps of the sweep's preparation, in order (`run(argv, env)` runs a command)."""
        ...


class CommandJob:
    """Any argv: it resumes when its output dir holds work (TTLAUNCH_RESUME tells it so);
    under torchrun when payload.torchrun asks; its payload.prepare commands prepare."""

    kind = PayloadKind.command

    def resume_state(self, command: PayloadCommand, attempt: int) -> ResumeAction:
        return ResumeAction.RESUME if any(command.output_dir.iterdir()) else ResumeAction.FRESH

    def resumed_argv(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        return argv

    def started_argv(
        self, argv: tuple[str, ...], torchrun: bool, rendezvous: Rendezvous | None, gpus: int
    ) -> tuple[str, ...]:
        if not torchrun:
            return argv
        where = rendezvous.torchrun_args() if rendezvous is not None else ["--standalone"]
        return (
            sys.executable, "-m", "torch.distributed.run", *where, "--nproc_per_node", str(max(gpus, 1)), "--no-python",
            *argv,
        )

    def started_env(self, env: Mapping[str, str], gpus: int) -> Mapping[str, str]:
        return env

    def preparation(self, command: PayloadCommand, run: Runner) -> Iterator[Preparation]:
        return command_steps(command, run)


class EvaluationJob(CommandJob):
    """An evaluation's command: as a command payload, never under torchrun."""

    kind = PayloadKind.evaluation

    def started_argv(
        self, argv: tuple[str, ...], torchrun: bool, rendezvous: Rendezvous | None, gpus: int
    ) -> tuple[str, ...]:
        return argv


class TorchtuneJob:
    """A torchtune recipe: it resumes from its newest epoch checkpoint (ttlaunch.job.resume)
    with resume_from_checkpoint=True; a several-task job meets at its rendezvous, given to
    `tune run`; its start-up hooks (ttlaunch.job.trainer_hooks): without GPUs, its LoRA
    checkpoints merge into copies of the weights, and in a training job its loggers keep one
    tracker run per point; its dataset's cache is built once for the sweep, after
    payload.prepare."""

    kind = PayloadKind.torchtune

    def resume_state(self, command: PayloadCommand, attempt: int) -> ResumeAction:
        decision = decide_torchtune(command.output_dir)
        log.info("attempt %d: %s", attempt, decision.reason)
        return decision.action

    def resumed_argv(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        return (*argv, "resume_from_checkpoint=True")

    def started_argv(
        self, argv: tuple[str, ...], torchrun: bool, rendezvous: Rendezvous | None, gpus: int
    ) -> tuple[str, ...]:
        if rendezvous is None:
            return argv  # one task: torchtune's own launcher (tune run --nproc_per_node) as the argv says
        # After `tune run`, wherever it starts (a scaffold's batch script comes first).
        at = next(i for i in range(len(argv) - 1) if argv[i : i + 2] == ("tune", "run")) + 2
        return (*argv[:at], *rendezvous.torchrun_args(), *argv[at:])

    def started_env(self, env: Mapping[str, str], gpus: int) -> Mapping[str, str]:
        # With GPUs the recipe's .cpu() copies the weights before the merge adds into them.
        hooks = [MERGE_ON_COPIES] if gpus == 0 else []
        if environment.TRACKER_ID in env:  # a training job (ttlaunch.job.tracker)
            hooks.append(TRACKER)
        return with_hooks(env, hooks)

    def preparation(self, command: PayloadCommand, run: Runner) -> Iterator[Preparation]:
        yield from command_steps(command, run)
        # Keyed once the commands ran: they may write the data.
        step = dataset_step(command.argv, command.sweep_env(), run)
        if step is not None:
            yield step


_JOB_PAYLOADS: dict[PayloadKind, JobPayload] = {
    job.kind: job for job in (TorchtuneJob(), CommandJob(), EvaluationJob())
}


def job_payload(kind: PayloadKind) -> JobPayload:
    """The ways of a job that runs a payload of this kind (an app's jobs run its task function:
    ttlaunch.job.app_attempt)."""
    return _JOB_PAYLOADS[kind]


def attempt_command(
    command: PayloadCommand, payload: JobPayload, attempt: int, state: ResumeAction
) -> PayloadCommand | None:
    """This attempt's command; None when the run has nothing left to do (FINISHED). Every
    payload gets TTLAUNCH_ATTEMPT (1, 2, ... across requeues), TTLAUNCH_RESUME (1 when it
    resumes earlier work) and TTLAUNCH_OUTPUT_DIR (the same every attempt)."""
    if state is ResumeAction.FINISHED:
        return None
    resumes = state is ResumeAction.RESUME
    argv = payload.resumed_argv(command.argv) if resumes else command.argv
    env = {**command.env, environment.ATTEMPT: str(attempt), environment.RESUME: "1" if resumes else "0"}
    return replace(command, argv=argv, env=env)


def distributed(
    command: PayloadCommand, payload: JobPayload, torchrun: bool, rendezvous: Rendezvous | None, gpus: int
) -> PayloadCommand:
    """The command as this task starts it: with its rank and the task count when the job has
    several tasks, started as its kind starts (torchtune's `tune run` given the rendezvous; a
    command with `torchrun: true` under torchrun, one process per GPU or one on the CPU)."""
    env = dict(command.env)
    if rendezvous is not None:
        env.update({environment.TASK: str(rendezvous.rank), environment.TASKS: str(rendezvous.tasks)})
    return replace(command, argv=payload.started_argv(command.argv, torchrun, rendezvous, gpus), env=env)
