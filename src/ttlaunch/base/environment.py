"""Every environment variable ttlaunch sets or reads, in one place."""

from __future__ import annotations

from pathlib import Path

# The prefix of every variable below: those that describe a job, not its sweep.
PREFIX = "TTLAUNCH_"

# Set for each payload: its run, its output dir (the same every attempt) and its job dir.
RUN_NAME = "TTLAUNCH_RUN_NAME"
OUTPUT_DIR = "TTLAUNCH_OUTPUT_DIR"
JOB_DIR = "TTLAUNCH_JOB_DIR"
# Set for each attempt: 1, 2, ... across requeues; and 1 when it resumes earlier work.
ATTEMPT = "TTLAUNCH_ATTEMPT"
RESUME = "TTLAUNCH_RESUME"
# Set for each task of a several-task job: its rank and how many there are.
TASK = "TTLAUNCH_TASK"
TASKS = "TTLAUNCH_TASKS"
# Exported by the batch script: the requeue budget computed at submission (JSON).
REQUEUE_POLICY = "TTLAUNCH_REQUEUE_POLICY"
# Given to `python -m ttlaunch.job.dataset_cache`: where it writes the cache dir it filled.
PREPARED_REPORT = "TTLAUNCH_PREPARED_REPORT"
# Prepended to, never replaced: an app's job puts its code snapshot first
# (ttlaunch.job.job_callable), a torchtune trainer ttlaunch's start-up hooks
# (ttlaunch.job.trainer_hooks).
PYTHONPATH = "PYTHONPATH"
# Which of those hooks a trainer runs (comma-separated names).
TRAINER_HOOKS = "TTLAUNCH_TRAINER_HOOKS"
# Set for each training job: its point's tracker run id, the same every attempt
# (ttlaunch.records.tracker_file). W&B's own variables (WANDB_*) follow from it
# (ttlaunch.job.tracker), each unless the user set it.
TRACKER_ID = "TTLAUNCH_TRACKER_ID"
# Read at launch: names the cluster outright (ttlaunch.inputs.platform).
PLATFORM = "TTLAUNCH_PLATFORM"
# Read by the test cluster's preset (compute=testcluster/cpu_1x): the root of its sweep dirs.
WORK_ROOT = "TTLAUNCH_WORK_ROOT"


def job_variables(run_name: str, output_dir: Path | str, job_dir: Path) -> dict[str, str]:
    """What a payload's environment says of its job."""
    return {RUN_NAME: run_name, OUTPUT_DIR: str(output_dir), JOB_DIR: str(job_dir)}
