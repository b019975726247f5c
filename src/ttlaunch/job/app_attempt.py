"""Inside a job of any Hydra app launched with ttlaunch's launcher: one attempt of the app's
task function, with the requeue contract.

Before the task function starts, its environment says where the attempt stands:
`TTLAUNCH_ATTEMPT` (1, 2, ... across requeues) and `TTLAUNCH_RESUME` (1 when an earlier
attempt of this job started in the same output dir: a requeue, or a resubmission). The
output dir (Hydra's, `HydraConfig.get().runtime.output_dir`) is the same every attempt, so
the app resumes from what it saved there. Its point's tracker run is there too: a
`wandb.init()` in the app keeps one W&B run per job across requeues (ttlaunch.job.tracker).

On SLURM, when the job is about to end (time limit or preemption) and the requeue budget
allows (ttlaunch.job.requeue), the task function's `checkpoint()` method is called, if it
has one (a callable object's method, or an attribute of the function), then the job goes
back into the queue. Locally, SIGTERM from the launcher stops the task.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Protocol

from hydra.core.utils import JobReturn, setup_globals
from hydra.types import TaskFunction
from omegaconf import DictConfig

from ttlaunch.base import environment
from ttlaunch.job.rendezvous import task_rank
from ttlaunch.job.requeue import current_attempt
from ttlaunch.job.signals import stop_when_asked, watch_for_end_warning
from ttlaunch.job.stagger import StaggerHook
from ttlaunch.job.tracker import tracker_env
from ttlaunch.records.tracker_file import keep_tracker
from ttlaunch.scheduler.submitit_files import job_dir_of, submitted_job_ids


class AppLauncher(Protocol):
    """What an attempt needs of ttlaunch's launcher (hydra_plugins.ttlaunch_launcher, a layer above)."""

    task_function: TaskFunction | None
    stagger: StaggerHook
    config: DictConfig | None
    sweep_name: str | None  # the sweep's name (else the app's, hydra.job.name)


def run_app_attempt(launcher: AppLauncher, run: Callable[[], JobReturn]) -> JobReturn:
    """`run` (Hydra's run_job of the task function) as one attempt of the job."""
    # submitit loads only where jobs are submitted or run.
    import submitit
    setup_globals()  # Hydra's resolvers (${now:...} in the sweep dir), as its run_job would
    submitted = submitit.JobEnvironment()
    job_dir = job_dir_of(Path(submitted.paths.folder))
    attempt = current_attempt()
    earlier_jobs = [job_id for job_id in submitted_job_ids(job_dir) if job_id != str(submitted.job_id)]
    os.environ[environment.ATTEMPT] = str(attempt)
    os.environ[environment.RESUME] = "1" if attempt > 1 or earlier_jobs else "0"
    if "SLURM_JOB_ID" in os.environ:
        checkpoint = getattr(launcher.task_function, "checkpoint", None)
        watch_for_end_warning(job_dir, attempt, task_rank(), save=checkpoint if callable(checkpoint) else None)
    else:
        stop_when_asked()
    # The stagger's start-up window: a task function runs in this process, so the window
    # is passed before it starts (startup_lock: one job's start every window_s).
    assert launcher.config is not None  # Hydra sets it up before the job runs
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir)).absolute()
    if task_rank() == 0:  # the point's tracker run, for the app's own `wandb.init()` (ttlaunch.job.tracker)
        group = launcher.sweep_name or str(launcher.config.hydra.job.name)
        name = str(job_dir.relative_to(sweep_dir)) if job_dir.is_relative_to(sweep_dir) else job_dir.name
        os.environ.update(tracker_env(keep_tracker(job_dir, group, name, {}), job_dir, os.environ))
    with launcher.stagger.startup_window(sweep_dir):
        pass
    return run()
