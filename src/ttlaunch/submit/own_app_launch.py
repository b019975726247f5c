"""ttlaunch's own app's sweep, in the launching process (the sweeper's work): validate every
input of every combination of command-line overrides and plan one job per fine-tuned run
(times any command-line sweep), then launch through the one launch path
(ttlaunch.submit.sweep_launch). What is its own here: the checks of the experiment, the
jobs.json description of its payload and evaluations, the provenance of the experiment's
files, the runs changed since an earlier launch, and each run's submission from its inputs.

Nothing is written before all inputs are validated: bad input leaves no sweep dir.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from omegaconf import DictConfig, OmegaConf

from ttlaunch.backend.executors import backend_for
from ttlaunch.backend.job_requests import SubmissionSettings
from ttlaunch.base.errors import InputError, SweepFailed
from ttlaunch.inputs.evaluation_plan import runs_inspect
from ttlaunch.inputs.input_copies import freeze_task
from ttlaunch.inputs.launch_inputs import LaunchInputs, read_inputs
from ttlaunch.inputs.payload import unpassed_controls
from ttlaunch.inputs.schema import ComputeConfig
from ttlaunch.inputs.summary import Experiment, Run, RunType
from ttlaunch.job.combination_configs import CombinationConfigs
from ttlaunch.monitor.callback import find_monitor
from ttlaunch.records.event_log import EVENT_LOG_NAME
from ttlaunch.records.jobs_file import Evaluator, JobKind, JobRecord, SweepState
from ttlaunch.records.ledger import Ledger
from ttlaunch.records.provenance import record_launch
from ttlaunch.records.results import sort_columns
from ttlaunch.records.rules_state import RULES_STATE_NAME, RulesState
from ttlaunch.records.status_table import HEADER, MARKDOWN_NAME, edited_header
from ttlaunch.submit.plugin_protocols import Launcher, Sweeper
from ttlaunch.submit.selection import changed_jobs
from ttlaunch.submit.submitter import Submission, job_return, run_submission
from ttlaunch.submit.sweep_jobs import PER_JOB_KEYS, JobSpec, combination_of, plan_jobs
from ttlaunch.submit.sweep_launch import check_settings, ended_without_completing, launch, writable

log = logging.getLogger(__name__)


@dataclass
class OwnAppLaunch:
    """ttlaunch's own app's launch (an AppLaunch of ttlaunch.submit.sweep_launch): the
    experiment's checked inputs and its planned jobs."""

    name: str
    sweep_dir: Path
    jobs: Sequence[JobSpec]
    settings: SubmissionSettings
    compute: ComputeConfig
    inputs: LaunchInputs
    config: DictConfig  # the primary config, as Hydra composed it
    config_loader: ConfigLoader
    resubmit_failed: bool
    resubmit_changed: bool
    # Where the command line sweeps something: each combination of its overrides -> its own inputs.
    combination_inputs: Mapping[tuple[str, ...], LaunchInputs] = field(default_factory=dict)
    resubmit_hint: str = "resubmit_failed=true"

    def inputs_for(self, overrides: Sequence[str]) -> LaunchInputs:
        """The inputs of the planned job with these overrides: its combination's, its run
        parameters applied."""
        return self.combination_inputs.get(combination_of(overrides), self.inputs).for_overrides(overrides)

    def submissions(self, jobs: Sequence[JobSpec]) -> list[Submission]:
        return [run_submission(self.inputs_for(job.overrides), self.sweep_dir, index, job.overrides) for index, job in enumerate(jobs)]

    def job_configs(self, submissions: Sequence[Submission]) -> CombinationConfigs | None:
        return CombinationConfigs.compose(self.config_loader, self.config, [s.overrides for s in submissions], PER_JOB_KEYS)

    def check_records(self, ledger: Ledger) -> list[str]:
        RulesState.load(self.sweep_dir / RULES_STATE_NAME)  # DamagedFile: one line, nothing written
        return _check_changed(self, ledger, self.resubmit_changed)

    def describe(self, state: SweepState) -> None:
        inputs = self.inputs
        state.payload_kind = inputs.payload_kind
        state.metrics_pattern, state.metrics_jsonl = inputs.payload.metrics.pattern, inputs.payload.metrics.jsonl
        state.sort_by = inputs.report.sort_by
        state.cause_patterns = list(inputs.cause_patterns)
        state.evaluator = Evaluator.INSPECT if runs_inspect(inputs.evaluation.command) else Evaluator.COMMAND
        if inputs.pruning.enabled:  # else what the decisions already made were judged by stays
            state.pruning = inputs.pruning.describe()
        directory = inputs.experiment.directory
        state.status_table = str(directory / MARKDOWN_NAME) if directory is not None else None
        state.experiment_log = str(directory / "logs" / EVENT_LOG_NAME) if directory is not None else None

    def record_launch(self, ledger: Ledger) -> tuple[Sequence[str], str]:
        sweep_dir, experiment = self.sweep_dir, self.inputs.experiment
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        code = {"experiment": _experiment_dir(self.inputs)}
        writable(sweep_dir, lambda: record_launch(sweep_dir, sys.argv, OmegaConf.to_yaml(self.config), code))
        if self.inputs.evaluation.enabled:
            writable(sweep_dir, lambda: _freeze_tasks(experiment, sweep_dir))
        counts = {kind: sum(run.type is kind for run in experiment.runs) for kind in RunType}
        unpassed = unpassed_controls(experiment, self.inputs.payload)
        ledger.events.write(
            "DISCOVER_EXPERIMENT",
            "Found experiment",
            ("Details", experiment.source),
            ("Result", f"Experiment {experiment.name} has {counts[RunType.FINE_TUNED]} fine-tuning runs"),
            *([("Not passed to the trainer", ", ".join(unpassed))] if unpassed else []),
            *([("Not used", ", ".join(experiment.not_used))] if experiment.not_used else []),
        )
        if unpassed:
            log.info("controls not passed to the trainer: %s", ", ".join(unpassed))
        if experiment.not_used:
            log.info("summary fields ttlaunch does not use: %s", ", ".join(experiment.not_used))
        details = (
            f"{counts[RunType.FINE_TUNED]} fine-tuned, {counts[RunType.CONTROL]} control and "
            f"{counts[RunType.EVAL_ONLY]} eval-only runs; {len(self.jobs)} jobs in the sweep"
        )
        return (), details

    def returns(self, records: Mapping[str, JobRecord]) -> list[JobReturn]:
        """Each run's JobReturn; SweepFailed when a run ended without completing, now or in an
        earlier launch (runs still queued or running, detached or unmonitored, are not failures;
        an evaluation that failed is a result the sweep owes, as a training is)."""
        evaluations = [name for name, record in records.items() if record.kind is JobKind.EVALUATION]
        names = [*(job.name for job in self.jobs), *evaluations]
        failed = [name for name in names if ended_without_completing(records.get(name))]
        if failed:
            raise SweepFailed(failed, len(names), str(self.sweep_dir / EVENT_LOG_NAME))
        return [job_return(records[job.name]) for job in self.jobs if job.name in records]


def _combinations(sweeper: Sweeper, arguments: Sequence[str]) -> list[list[str]]:
    """The command line's sweep, expanded as Hydra's basic sweeper (the plugin's base) does."""
    assert sweeper.hydra_context is not None  # Hydra sets it up before it sweeps
    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    overrides = parser.parse_overrides(list(arguments))
    combinations: list[list[str]] = sweeper.split_arguments(overrides, None)[0]
    return combinations


def validate_and_plan(sweeper: Sweeper, launcher: Launcher, arguments: Sequence[str]) -> OwnAppLaunch:
    """Validate the inputs of every combination of overrides and plan the jobs: the primary
    config's inputs, the jobs, and, where the command line sweeps something, each
    combination's own inputs (`compute.mem_gb=16,32` asks for other memory in each). (The
    sweeper has checked that its launcher is ttlaunch's.)"""
    config, context = sweeper.config, sweeper.hydra_context
    assert config is not None and context is not None  # Hydra sets them up before it sweeps
    check_settings(launcher, find_monitor(context.callbacks))
    if launcher.snapshot:
        raise InputError(
            "hydra.launcher", "snapshot",
            "is for other Hydra apps' code; ttlaunch's own app runs each run's files from the copies its submission takes",
        )
    metrics = launcher.metrics
    if metrics.pattern is not None or metrics.jsonl is not None:
        raise InputError(
            "hydra.launcher", "metrics", "reads another Hydra app's metrics; a run's trainer says where its are in payload.metrics"
        )
    combinations = _combinations(sweeper, arguments)
    inputs = read_inputs(config, config.hydra)
    if not inputs.experiment.fine_tuned:
        kinds = ", ".join(sorted({run.type.value for run in inputs.experiment.runs}))
        raise InputError(inputs.experiment.source, "runs", f"no fine-tuned run to train (only {kinds} runs)")
    check_status_table(inputs.experiment.directory)
    if inputs.evaluation.enabled:
        check_given_models(inputs.experiment, prepared=bool(inputs.payload.prepare))
    jobs = plan_jobs(inputs.experiment, combinations)
    tasks = [task for cell in inputs.experiment.evaluation_matrix for task in cell.tasks]
    check_sort_key(inputs.report.sort_by, [inputs.for_overrides(job.overrides).run(job.run_name) for job in jobs], tasks)
    sweep_dir = Path(config.hydra.sweep.dir)
    backend = backend_for(launcher.executor)
    jobs_of: dict[tuple[str, ...], list[JobSpec]] = {}
    for job in jobs:
        jobs_of.setdefault(combination_of(job.overrides), []).append(job)
    combination_inputs: dict[tuple[str, ...], LaunchInputs] = {}
    for combination in combinations:
        # The primary config already holds every single-valued override; compose again
        # only when the command line sweeps something that may change the inputs.
        combined_inputs = inputs
        if len(combinations) > 1:
            combined = context.config_loader.load_sweep_config(config, list(combination))
            combined_inputs = combination_inputs[combination_of(combination)] = read_inputs(combined, combined.hydra)
        for job in jobs_of.get(combination_of(combination), []):
            compute = combined_inputs.compute_for(job.run_name)
            command = combined_inputs.payload_for(job.run_name, sweep_dir / job.name)
            if combined_inputs.evaluation.enabled:  # a bad evaluation.compute, now rather than mid-sweep
                combined_inputs.evaluation_compute_for(job.run_name)
            backend.check_job(combined_inputs, compute, command.argv)
    assert launcher.config is not None  # Hydra sets it up before it launches
    settings = SubmissionSettings(
        inputs.requeue, inputs.user, launcher.signal_delay_s, inputs.compute_source, launcher.submitit_options
    )
    return OwnAppLaunch(
        name=inputs.experiment.name, sweep_dir=sweep_dir, jobs=jobs, settings=settings, compute=inputs.compute,
        inputs=inputs, config=launcher.config, config_loader=context.config_loader,
        resubmit_failed=bool(config.resubmit_failed) or launcher.resubmit_failed,
        resubmit_changed=bool(config.resubmit_changed), combination_inputs=combination_inputs,
    )


def run_sweep(sweeper: Sweeper, launcher: Launcher, arguments: Sequence[str]) -> list[Sequence[JobReturn]]:
    app = validate_and_plan(sweeper, launcher, arguments)  # raises InputError before anything is written
    assert sweeper.hydra_context is not None  # Hydra sets it up before it sweeps
    return [launch(app, launcher, find_monitor(sweeper.hydra_context.callbacks))]


def check_given_models(experiment: Experiment, prepared: bool) -> None:
    """The models evaluated as the summary gives them (a control's base model, an eval-only
    run's checkpoint) must be there now: their evaluations start with the sweep. Unless the
    sweep's preparation (`payload.prepare`) may make them: their evaluations wait for them
    while the runs train."""
    for cell in experiment.evaluation_matrix:
        run = experiment.run(cell.run)
        if run.type is RunType.FINE_TUNED or not cell.tasks:
            continue
        path = experiment.given_model(run)
        if not path.is_dir() and prepared:
            log.info("%s is not there yet: %s's evaluation waits for the sweep's preparation to make it", path, run.name)
        elif not path.is_dir():
            where = f"runs.{run.name}.parameters.checkpoint_path" if run.type is RunType.EVAL_ONLY else f"models.base.{run.model}.path"
            raise InputError(experiment.source, where, f"{path} is not a directory: {run.name} is evaluated on it")


def check_status_table(directory: Path | None) -> None:
    """The experiment's status table must be one ttlaunch recognises by its header, or
    none: one whose header was edited would silently stop following the jobs."""
    markdown = directory / MARKDOWN_NAME if directory is not None else None
    if markdown is None or not markdown.is_file():
        return
    try:
        edited = edited_header(markdown.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(str(markdown), "status table", f"cannot be read: {err}") from None
    if edited is not None:
        line, header = edited
        raise InputError(
            str(markdown), f"line {line}",
            f"the Fine-tuning status table's header reads {header}; ttlaunch updates the table whose header is "
            f"| {' | '.join(HEADER)} |: restore that header, or remove the table",
        )


def check_sort_key(sort_by: str, runs: Sequence[Run], tasks: Sequence[str]) -> None:
    """report.sort_by names a column of the results table: a measure, a run parameter or an
    evaluation task (its score)."""
    columns = sort_columns((name for run in runs for name in run.parameters), tasks)
    if sort_by not in columns:
        raise InputError("ttlaunch.yaml", "report.sort_by", f"{sort_by!r} is not a column of the results: one of {', '.join(columns)}")


def _experiment_dir(inputs: LaunchInputs) -> Path:
    """Where the experiment's own files are: its scaffold dir, else the dir of the file its
    summary was read from, else where the launch ran."""
    if inputs.experiment.directory is not None:
        return inputs.experiment.directory
    source = Path(inputs.experiment.source)
    return source.parent if source.is_file() else Path.cwd()


def _freeze_tasks(experiment: Experiment, sweep_dir: Path) -> None:
    """The sweep's copies of the task files its evaluations run (ttlaunch.inputs.input_copies), taken
    once; a task file edited since is said, and its copy kept."""
    evaluated = {task for cell in experiment.evaluation_matrix for task in cell.tasks}
    for task in experiment.evaluation_tasks:
        if task.script is not None and task.name in evaluated:
            note = freeze_task(sweep_dir, task.name, task.script)
            if note is not None:
                log.warning(note)


def _check_changed(app: OwnAppLaunch, ledger: Ledger, resubmit_changed: bool) -> list[str]:
    """Jobs submitted with other parameters, compute or command than their run asks for now.
    Refused (InputError, nothing written) unless `resubmit_changed`; then those that ended
    are trained again, and one still queued or running is refused all the same."""
    specs = {
        job.name: app.inputs_for(job.overrides).submission_spec(job.run_name, ledger.sweep_dir / job.name)
        for job in app.jobs
    }
    changed = changed_jobs(app.jobs, ledger.state.jobs, specs)
    if not changed:
        return []
    described = "; ".join(f"{name} ({', '.join(changes)})" for name, changes in changed.items())
    if not resubmit_changed:
        raise InputError(
            str(ledger.state_path), "changed runs",
            f"changed since they were submitted: {described}. Add resubmit_changed=true to train them again "
            "with the new values (their earlier jobs stay recorded), or undo the change",
        )
    active = [name for name in changed if not ledger.state.jobs[name].status.terminal]
    if active:
        ids = " ".join(str(ledger.state.jobs[name].job_id) for name in active)
        raise InputError(
            str(ledger.state_path), "changed runs",
            f"{', '.join(active)} changed but still queued or running with the old values; cancel them first (scancel {ids})",
        )
    log.warning("trained again with their new values: %s", described)
    return list(changed)
