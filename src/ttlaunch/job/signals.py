"""How a job answers signals, set up before its payload or task function runs: SLURM's end
warning (requeue per the budget its submission exported, or run on to the time limit), and
locally, the launcher's SIGTERM. Kept apart from the payload's ways (ttlaunch.job.task) so an
app's job (ttlaunch.job.app_attempt) imports only this."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Callable

from ttlaunch.base.errors import StoppedByTTLaunch
from ttlaunch.job.requeue import EndWarning, RequeuePolicy
from ttlaunch.scheduler import slurm

log = logging.getLogger(__name__)


def run_to_the_time_limit() -> None:
    """requeue=off: let the job run on when SLURM warns of its time limit.

    submitit answers the warning signal of a job it cannot requeue by failing it at once:
    the last minutes of training would be lost and the job recorded FAILED. Without requeue,
    the payload runs until SLURM stops it, and SLURM records TIMEOUT.
    """
    def keep_running(signum: int, frame: object) -> None:
        log.warning("time limit near (signal %s); requeue is off: running on until SLURM stops the job", signum)

    signal.signal(signal.SIGUSR2, keep_running)


def stop_when_asked() -> None:
    """A local job: SIGTERM (from the launcher, through submitit's controller) stops the
    payload with its grace period and ends the job. submitit would let it pass; on SLURM it
    must, since SLURM signals every process of the job itself."""
    def stop(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # asked once is enough
        raise StoppedByTTLaunch(f"asked to stop (signal {signum})")

    signal.signal(signal.SIGTERM, stop)


def watch_for_end_warning(
    job_dir: Path, attempt: int, rank: int, save: Callable[[], object] | None = None
) -> EndWarning | None:
    """On SLURM, for the whole attempt: how the job answers SLURM's end warning, by the
    requeue budget its submission exported. Task 0 requeues (ttlaunch.job.requeue); the
    handler it returns must be attached to the payload once that runs; `save` is what a task
    function running in this process saves before a requeue. Without a budget
    (requeue=off) the job runs on to its time limit."""
    policy = RequeuePolicy.from_environment()
    if policy is None:
        run_to_the_time_limit()
        return None
    if rank != 0:
        leave_requeue_to_task_0()
        return None
    handler = EndWarning(job_dir, os.environ["SLURM_JOB_ID"], attempt, policy, requeue=slurm.requeue, save=save)
    signal.signal(signal.SIGUSR2, handler)
    return handler


def leave_requeue_to_task_0() -> None:
    """Tasks other than 0 let SLURM's end warning pass: task 0 requeues the whole job, and
    SLURM stops every task with it."""
    def pass_on(signum: int, frame: object) -> None:
        log.info("end warning (signal %s): task 0 requeues the job", signum)

    signal.signal(signal.SIGUSR2, pass_on)
