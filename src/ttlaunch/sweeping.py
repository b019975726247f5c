"""The sweeper's work, in the launching process: validate every input, pick the runs to
submit, write the sweep's first records, hand the jobs to the launcher, report the end.

Nothing is written before all inputs are validated: bad input leaves no sweep dir.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobStatus
from omegaconf import OmegaConf

from ttlaunch.composed import read_inputs
from ttlaunch.errors import InputError, SweepFailed
from ttlaunch.payload import build_payload
from ttlaunch.records import EVENT_LOG_NAME, EventLog
from ttlaunch.state import STATE_FILE_NAME, load_state
from ttlaunch.summary import RunType
from ttlaunch.sweep import JobSpec, plan_jobs

log = logging.getLogger(__name__)


def _combinations(sweeper: Any, arguments: Sequence[str]) -> list[list[str]]:
    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    overrides = parser.parse_overrides(list(arguments))
    return BasicSweeper.split_arguments(overrides, None)[0]


def plan(sweeper: Any, arguments: Sequence[str]) -> tuple[Any, list[JobSpec]]:
    """Validate the inputs of every combination of overrides and plan the jobs."""
    from hydra_plugins.ttlaunch_launcher.launcher import TTLaunchLauncher

    config = sweeper.config
    if not isinstance(sweeper.launcher, TTLaunchLauncher):
        # Any other launcher (Hydra's basic one, say) would train in this very process.
        choice = config.hydra.runtime.choices.get("compute")
        raise InputError(
            f"compute={choice}", "hydra/launcher", "the preset must choose ttlaunch_local or ttlaunch_slurm"
        )
    combinations = _combinations(sweeper, arguments)
    inputs = read_inputs(config, config.hydra)
    jobs = plan_jobs(inputs.experiment, combinations)
    sweep_dir = Path(config.hydra.sweep.dir)
    for combination in combinations:
        # The primary config already holds every single-valued override; compose again
        # only when the command line sweeps something that may change the inputs.
        combined = config
        if len(combinations) > 1:
            combined = sweeper.hydra_context.config_loader.load_sweep_config(config, list(combination))
        combined_inputs = inputs if combined is config else read_inputs(combined, combined.hydra)
        for job in jobs:
            if all(o in job.overrides for o in combination):
                combined_inputs.compute_for(job.run.name)
                build_payload(
                    combined_inputs.experiment, job.run, combined_inputs.payload, sweep_dir / job.name,
                    combined_inputs.payload_source,
                )
    return inputs, jobs


def run_sweep(sweeper: Any, arguments: Sequence[str]) -> list[Any]:
    inputs, jobs = plan(sweeper, arguments)  # raises InputError before anything is written
    config = sweeper.config
    sweep_dir = Path(config.hydra.sweep.dir)
    experiment = inputs.experiment
    if sweeper.launcher.dry_run:  # no records of a launch that does not happen
        return [sweeper.launcher.launch([list(job.overrides) for job in jobs], initial_job_idx=0)]
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, sweep_dir / "multirun.yaml")
    events = EventLog(sweep_dir / EVENT_LOG_NAME)
    counts = {kind: sum(run.type is kind for run in experiment.runs) for kind in RunType}
    events.write(
        "DISCOVER_EXPERIMENT",
        "Found experiment",
        ("Details", experiment.source),
        ("Result", f"Experiment {experiment.name} has {counts[RunType.FINE_TUNED]} fine-tuning runs"),
    )
    state = load_state(sweep_dir / STATE_FILE_NAME, experiment.name, sweep_dir)
    done = [job for job in jobs if job.name in state.jobs and state.jobs[job.name].status == "COMPLETED"]
    to_submit = [job for job in jobs if job not in done]
    events.write(
        "IDENTIFY_RUNS",
        "Selecting runs to submit",
        (
            "Details",
            f"{counts[RunType.FINE_TUNED]} fine-tuned, {counts[RunType.CONTROL]} control and "
            f"{counts[RunType.EVAL_ONLY]} eval-only runs; {len(jobs)} jobs in the sweep",
        ),
        ("Result", f"{len(to_submit)} jobs ready to submit ({len(done)} already completed)"),
        ("Skipped", ", ".join(job.name for job in done) or "none"),
    )
    log.info("sweep dir: %s", sweep_dir)
    if not to_submit:
        log.info("nothing to submit: all %d jobs of %s already completed", len(jobs), experiment.name)
        return []
    returns = sweeper.launcher.launch([list(job.overrides) for job in to_submit], initial_job_idx=0)
    failed = [job.name for job, ret in zip(to_submit, returns) if ret.status is not JobStatus.COMPLETED]
    if failed:
        raise SweepFailed(failed, len(to_submit), str(sweep_dir / EVENT_LOG_NAME))
    return [returns]
