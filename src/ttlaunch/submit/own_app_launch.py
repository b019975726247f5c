"""The sweeper's work, in the launching process: validate every input, take the sweep's
lock, learn what earlier launches left (the state file, then SLURM), pick the runs to
submit, submit them through the launcher (its job callable, its settings), report the end.

Nothing is written before all inputs are validated: bad input leaves no sweep dir.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence, TypeVar

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from omegaconf import OmegaConf

from ttlaunch.backend.executors import backend_for
from ttlaunch.backend.job_requests import SubmissionSettings
from ttlaunch.base.errors import InputError, SweepFailed, UnwritableSweep
from ttlaunch.inputs.evaluation_plan import runs_inspect
from ttlaunch.inputs.input_copies import freeze_task
from ttlaunch.inputs.launch_inputs import LaunchInputs, read_inputs
from ttlaunch.inputs.payload import unpassed_controls
from ttlaunch.inputs.schema import Executor, Relaunch
from ttlaunch.inputs.summary import Experiment, Run, RunType
from ttlaunch.job.combination_configs import CombinationConfigs
from ttlaunch.monitor.callback import SweepWatcher, find_monitor
from ttlaunch.monitor.settings import MonitorSettings
from ttlaunch.monitor.sweep_monitor import Monitor
from ttlaunch.records.event_log import EVENT_LOG_NAME
from ttlaunch.records.jobs_file import Evaluator, JobKind, JobRecord
from ttlaunch.records.ledger import Ledger
from ttlaunch.records.provenance import record_launch
from ttlaunch.records.results import sort_columns
from ttlaunch.records.rules_state import RULES_STATE_NAME, RulesState
from ttlaunch.records.status_table import HEADER, MARKDOWN_NAME, edited_header
from ttlaunch.records.sweep_lock import SweepLock
from ttlaunch.scheduler.states import JobState
from ttlaunch.scheduler.submitit_files import folder, log_paths
from ttlaunch.submit import monitor_job
from ttlaunch.submit.monitor_job import MonitorSession
from ttlaunch.submit.plugin_protocols import Launcher, Sweeper
from ttlaunch.submit.selection import Selection, changed_jobs, select_jobs, unrecorded_job_id
from ttlaunch.submit.submitter import (
    Submitter,
    job_return,
    reactions_for,
    run_submission,
    submit_and_watch,
)
from ttlaunch.submit.sweep_jobs import PER_JOB_KEYS, JobSpec, combination_of, plan_jobs

log = logging.getLogger(__name__)

Written = TypeVar("Written")


@dataclass
class LaunchSession:
    """One launch of ttlaunch's own app as its sweeper built it, for the submission
    (launch_runs): the checked inputs, the sweep's ledger (one per launch: what the
    launcher submits is recorded where the sweeper chose the jobs) and the monitor callback."""

    inputs: LaunchInputs
    ledger: Ledger
    callback: SweepWatcher | None
    # Where the command line sweeps something: each combination of its overrides -> its own inputs.
    combination_inputs: Mapping[tuple[str, ...], LaunchInputs] = field(default_factory=dict)

    def inputs_for(self, overrides: Sequence[str]) -> LaunchInputs:
        """The inputs of the planned job with these overrides: its combination's, its run
        parameters applied."""
        return self.combination_inputs.get(combination_of(overrides), self.inputs).for_overrides(overrides)


def _combinations(sweeper: Sweeper, arguments: Sequence[str]) -> list[list[str]]:
    """The command line's sweep, expanded as Hydra's basic sweeper (the plugin's base) does."""
    assert sweeper.hydra_context is not None  # Hydra sets it up before it sweeps
    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    overrides = parser.parse_overrides(list(arguments))
    combinations: list[list[str]] = sweeper.split_arguments(overrides, None)[0]
    return combinations


def validate_and_plan(
    sweeper: Sweeper, launcher: Launcher, arguments: Sequence[str]
) -> tuple[LaunchInputs, list[JobSpec], dict[tuple[str, ...], LaunchInputs]]:
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
    return inputs, jobs, combination_inputs


# The launcher's and the monitor's own numeric settings: (owner, name, least value, None allowed).
_SETTINGS = (
    ("stagger", "seconds", 0, False),
    ("stagger", "window_s", 0, False),
    ("stagger", "concurrent_submissions", 1, False),
    ("hydra.callbacks.monitor", "poll_interval_s", 0.1, True),
    ("hydra.callbacks.monitor", "alert_after_failures", 1, False),
    ("hydra.callbacks.monitor", "resource_every_polls", 1, False),
    ("hydra.callbacks.monitor", "metrics_retry_s", 0, False),
    ("hydra.callbacks.monitor", "end_check_s", 0, False),
    ("hydra.callbacks.monitor", "job_mem_gb", 0.1, False),
    ("hydra.callbacks.monitor", "job_timeout_min", 1, False),
)


def check_settings(launcher: Launcher, monitor: SweepWatcher | None) -> None:
    """The launcher's own settings (its stagger hook, dry_run; Hydra's schema already types
    max_submitted) and the monitor's, checked with the other inputs: a value of the wrong
    kind is one line before anything is submitted, not a TypeError after the first job went in."""
    owners = {"stagger": launcher.stagger, "hydra.callbacks.monitor": monitor}
    for owner, name, least, optional in _SETTINGS:
        value = getattr(owners[owner], name, None) if owners[owner] is not None else None
        if value is None and (optional or not hasattr(owners[owner], name)):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < least:
            raise InputError(owner, name, f"expected a number of at least {least}, got {value!r}")
    live = getattr(monitor, "live", "auto")
    if live not in ("auto", "on", "off"):
        raise InputError("hydra.callbacks.monitor", "live", f"expected auto, on or off, got {live!r}")
    stagger = launcher.stagger
    if not (callable(getattr(stagger, "before_submit", None)) and callable(getattr(stagger, "startup_window", None))):
        raise InputError(
            "stagger", "_target_", f"{stagger!r} has no before_submit and startup_window (ttlaunch.job.stagger)"
        )
    if not isinstance(launcher.dry_run, bool):
        raise InputError("hydra.launcher", "dry_run", f"expected true or false, got {launcher.dry_run!r}")


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


def _describe(ledger: Ledger, inputs: LaunchInputs, executor: Executor) -> None:
    """What a monitor needs to resume from jobs.json alone."""
    state = ledger.state
    state.executor = executor
    state.payload_kind = inputs.payload_kind
    state.metrics_pattern, state.metrics_jsonl = inputs.payload.metrics.pattern, inputs.payload.metrics.jsonl
    state.sort_by = inputs.report.sort_by
    state.evaluator = Evaluator.INSPECT if runs_inspect(inputs.evaluation.command) else Evaluator.COMMAND
    directory = inputs.experiment.directory
    state.status_table = str(directory / MARKDOWN_NAME) if directory is not None else None
    state.experiment_log = str(directory / "logs" / EVENT_LOG_NAME) if directory is not None else None
    ledger.events.copy = Path(state.experiment_log) if state.experiment_log else None


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


def adopt_unrecorded(ledger: Ledger, jobs: Sequence[JobSpec]) -> None:
    """Jobs a killed launcher submitted without recording them join the state as PENDING."""
    for job in jobs:
        record = ledger.state.jobs.get(job.name)
        if record is not None and record.job_id is not None:
            continue
        job_dir = job.job_dir(ledger.sweep_dir)
        job_id = unrecorded_job_id(job_dir)
        if job_id is None:
            continue
        stdout, stderr = log_paths(job_dir, job_id)
        ledger.state.jobs[job.name] = JobRecord(
            name=job.name, job_id=job_id, job_dir=str(job_dir), stdout=str(stdout), stderr=str(stderr),
        )
        ledger.events.write("SUBMIT_JOB", job.name, ("Result", f"Job ID {job_id} found in {folder(job_dir)}, not yet recorded"))
        log.warning("%s: job %s was submitted by an earlier launch without being recorded; re-attaching", job.name, job_id)


def run_sweep(sweeper: Sweeper, launcher: Launcher, arguments: Sequence[str]) -> list[Sequence[JobReturn]]:
    inputs, jobs, combination_inputs = validate_and_plan(sweeper, launcher, arguments)  # raises InputError before anything is written
    config, context = sweeper.config, sweeper.hydra_context
    assert config is not None and context is not None  # Hydra sets them up before it sweeps
    sweep_dir = Path(config.hydra.sweep.dir)
    experiment = inputs.experiment
    callback = find_monitor(context.callbacks)
    if launcher.dry_run:  # no records of a launch that does not happen
        session = LaunchSession(inputs, Ledger.open(sweep_dir, experiment.name), callback, combination_inputs)
        return [launch_runs(launcher, session, [list(job.overrides) for job in jobs])]
    check_monitoring(launcher, callback)
    writable(sweep_dir, lambda: sweep_dir.mkdir(parents=True, exist_ok=True))
    with SweepLock(sweep_dir):  # UnwritableSweep when it cannot write its lock file
        ledger = Ledger.open(sweep_dir, experiment.name)  # DamagedFile: one line, nothing written
        RulesState.load(sweep_dir / RULES_STATE_NAME)
        session = LaunchSession(inputs, ledger, callback, combination_inputs)
        changed = _check_changed(session, jobs, bool(config.resubmit_changed))  # before anything is written
        _describe(ledger, inputs, launcher.executor)
        # The first write: a sweep dir that cannot take it is said now, before any submission.
        writable(ledger.state_path, ledger.save_state)
        OmegaConf.save(config, sweep_dir / "multirun.yaml")
        code = {"experiment": _experiment_dir(inputs)}
        writable(sweep_dir, lambda: record_launch(sweep_dir, sys.argv, OmegaConf.to_yaml(config), code))
        if inputs.evaluation.enabled:
            writable(sweep_dir, lambda: _freeze_tasks(inputs.experiment, sweep_dir))
        counts = {kind: sum(run.type is kind for run in experiment.runs) for kind in RunType}
        unpassed = unpassed_controls(experiment, inputs.payload)
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
            f"{counts[RunType.EVAL_ONLY]} eval-only runs; {len(jobs)} jobs in the sweep"
        )
        selection = reconcile_and_select(
            ledger, jobs, callback, bool(config.resubmit_failed) or launcher.resubmit_failed, changed,
            details, "resubmit_failed=true", rerun=launcher.relaunch is Relaunch.rerun,
        )
        if selection.submit or selection.attach:
            launch_runs(launcher, session, [list(job.overrides) for job in selection.submit])
        else:
            log.info("nothing to submit or watch: %d jobs of %s already ended", len(jobs), experiment.name)
        ended = ledger.state.jobs
    # The exit code speaks for the whole sweep, not only for what this launch submitted: a
    # run that ended without completing (now or in an earlier launch) makes it 1. Runs still
    # queued or running (detached, monitoring off) are not failures. An evaluation that failed
    # is a result the sweep owes, as a training is.
    evaluations = [name for name, record in ended.items() if record.kind is JobKind.EVALUATION]
    failed = [name for name in [*(job.name for job in jobs), *evaluations] if ended_without_completing(ended.get(name))]
    if failed:
        raise SweepFailed(failed, len(jobs) + len(evaluations), str(sweep_dir / EVENT_LOG_NAME))
    return []


def reconcile_and_select(
    ledger: Ledger, jobs: Sequence[JobSpec], callback: SweepWatcher | None, resubmit_failed: bool,
    changed: Sequence[str], details: str, resubmit_hint: str, rerun: bool,
) -> Selection:
    """Under the sweep's lock: learn what earlier launches left (jobs they submitted without
    recording them, then one poll), pick the jobs to submit, and record the choice."""
    monitor = _reconciling_monitor(callback, ledger)
    if monitor.backend.jobs_outlive_launch:  # else they stopped with the launch that started them: none to adopt
        adopt_unrecorded(ledger, jobs)
    # What happened while nobody watched: one poll of the jobs earlier launches left running.
    monitor.poll()
    selection = select_jobs(jobs, ledger.state.jobs, resubmit_failed, changed, rerun)
    ledger.events.write(
        "IDENTIFY_RUNS",
        "Selecting runs to submit",
        ("Details", details),
        (
            "Result",
            f"{len(selection.submit)} jobs ready to submit ({len(selection.completed)} already completed, "
            f"{len(selection.attach)} still queued or running, {len(selection.failed)} failed and not resubmitted, "
            f"{len(selection.changed)} changed and submitted again, {len(selection.resumed)} stopped by ttlaunch "
            f"and resumed, {len(selection.rerun)} ended and run again)",
        ),
        ("Skipped", ", ".join(selection.completed + selection.attach + selection.failed) or "none"),
    )
    log.info("sweep dir: %s", ledger.sweep_dir)
    if selection.failed:
        log.warning(
            "not resubmitted (their last attempt failed): %s; add %s to submit them again",
            ", ".join(selection.failed), resubmit_hint,
        )
    ledger.state.unsubmitted = [job.name for job in selection.submit]
    ledger.save()
    return selection


def launch_runs(launcher: Launcher, session: LaunchSession, job_overrides: Sequence[Sequence[str]]) -> Sequence[JobReturn]:
    """Submit the planned runs of ttlaunch's own app through its launcher (the sweeper has
    validated the inputs, holds the sweep's lock and has saved the ledger: its `session`), then
    watch."""
    inputs, ledger, callback = session.inputs, session.ledger, session.callback
    sweep_dir = ledger.sweep_dir
    settings = SubmissionSettings(
        inputs.requeue, inputs.user, launcher.signal_delay_s, inputs.compute_source, launcher.submitit_options
    )
    planned = [
        run_submission(session.inputs_for(o), sweep_dir, index, o) for index, o in enumerate(job_overrides)
    ]
    if launcher.dry_run:
        return Submitter(ledger, settings, backend_for(launcher.executor)).dry_run(planned)
    monitor = callback.monitor_for(ledger) if callback is not None else None
    # The monitor's backend (the one jobs.json names) is the one this launch submits through:
    # it watches the local jobs it starts through their handles.
    submitter = Submitter(ledger, settings, monitor.backend if monitor is not None else backend_for(launcher.executor))
    if monitor is not None:
        training_jobs = {submission.name: submission.run_name for submission in planned if submission.run_name is not None}
        monitor.reactions += reactions_for(inputs, ledger, submitter, session.combination_inputs, training_jobs)
        detached = MonitorSession(inputs, settings, monitor.settings, None, session.combination_inputs, training_jobs)

        def hand_over() -> str:
            detached.job_callable = submitter.job_callable  # made as the jobs were submitted
            return monitor_job.hand_over(
                ledger, detached, submitter.backend, inputs.compute, inputs.user, launcher.signal_delay_s,
                inputs.compute_source,
            )

        monitor.hand_over = hand_over
    assert launcher.hydra_context is not None and launcher.config is not None  # Hydra sets them up before it launches
    launcher.combination_configs = CombinationConfigs.compose(
        launcher.hydra_context.config_loader, launcher.config, job_overrides, PER_JOB_KEYS
    )
    names = submit_and_watch(launcher, submitter, planned, callback, monitor)
    return [job_return(ledger.state.jobs[name]) for name in names]


def writable(path: Path, write: Callable[[], Written]) -> Written:
    """`write` (something in the sweep dir), and what it returned; UnwritableSweep, naming the
    path and the OS's reason, when the sweep dir cannot take it (read-only, full, no permission)."""
    try:
        return write()
    except OSError as err:
        raise UnwritableSweep(err.filename or path, err) from None


def ended_without_completing(record: JobRecord | None) -> bool:
    return record is not None and record.status.terminal and record.status is not JobState.COMPLETED


def _check_changed(session: LaunchSession, jobs: Sequence[JobSpec], resubmit_changed: bool) -> list[str]:
    """Jobs submitted with other parameters, compute or command than their run asks for now.
    Refused (InputError, nothing written) unless `resubmit_changed`; then those that ended
    are trained again, and one still queued or running is refused all the same."""
    ledger = session.ledger
    specs = {
        job.name: session.inputs_for(job.overrides).submission_spec(job.run_name, ledger.sweep_dir / job.name)
        for job in jobs
    }
    changed = changed_jobs(jobs, ledger.state.jobs, specs)
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


def _reconciling_monitor(callback: SweepWatcher | None, ledger: Ledger) -> Monitor:
    """The configured monitor, or (monitoring switched off) a default one for this one poll."""
    if callback is not None:
        return callback.monitor_for(ledger)
    return Monitor(ledger, MonitorSettings(live="off"))


def check_monitoring(launcher: Launcher, callback: SweepWatcher | None) -> None:
    """Queue caps need someone counting; the backend says what its jobs need watched."""
    if launcher.max_submitted is not None and callback is None:
        raise InputError("hydra.launcher", "max_submitted", "needs the monitor to count queued jobs (it was switched off)")
    backend_for(launcher.executor).check_monitoring(callback is not None, bool(getattr(callback, "detach", False)))
