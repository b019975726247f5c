"""What a training job tells experiment trackers: its point's tracker run (ttlaunch.records.
tracker_file), in the environment its payload or task function starts in.

`TTLAUNCH_TRACKER_ID` always; and, each unless the user set it, W&B's own variables, so that
a `wandb.init()` in anyone's code keeps one W&B run per point across requeues, restarts and
re-launches with no change: the run's id with `resume=allow`, its group (the experiment), its
name (the run), `job_type=train`, and its dir (the job dir, where the monitor finds offline
runs to sync). torchtune's loggers get more from the trainer's start-up hook
(ttlaunch.job.trainer_hooks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ttlaunch.base import environment
from ttlaunch.records.tracker_file import TrackerRun


def tracker_env(run: TrackerRun, job_dir: Path, given: Mapping[str, str]) -> dict[str, str]:
    """The variables to add to `given` (the environment the payload would start in)."""
    env = {environment.TRACKER_ID: run.id}
    defaults = {
        "WANDB_RUN_ID": run.id, "WANDB_RUN_GROUP": run.group, "WANDB_NAME": run.name, "WANDB_JOB_TYPE": "train",
        "WANDB_DIR": str(job_dir),
    }
    if "WANDB_RUN_ID" not in given:  # a user's own id comes with their own way to resume
        defaults["WANDB_RESUME"] = "allow"
    env.update({name: value for name, value in defaults.items() if value and name not in given})
    return env
