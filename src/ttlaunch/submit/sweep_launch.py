"""A launch, in the launching process: the one sequence every sweep goes through, ttlaunch's
own app (ttlaunch.submit.own_app_launch) and any other Hydra app (ttlaunch.submit.any_app_launch)
alike.

Each kind of app first checks its inputs and plans its jobs into an `AppLaunch` (nothing is
written before: bad input leaves no sweep dir). Then, here: the dry run, or the sweep's lock,
its ledger, the description of the sweep in jobs.json, the provenance, what earlier launches
left (their unrecorded jobs, then one poll), the runs to submit, the monitor with its
reactions and its hand-over, the submission and the watch. What the app's runs returned (or
why the sweep failed) is the app's to say.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence, TypeVar

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn

from ttlaunch.backend.contract import JobBackend
from ttlaunch.backend.executors import backend_for
from ttlaunch.backend.job_requests import SubmissionSettings
from ttlaunch.base.errors import InputError, UnwritableSweep
from ttlaunch.inputs.launch_inputs import LaunchInputs
from ttlaunch.inputs.schema import ComputeConfig, Relaunch
from ttlaunch.job.combination_configs import CombinationConfigs
from ttlaunch.job.job_callable import PrePickledJob
from ttlaunch.monitor.callback import SweepWatcher
from ttlaunch.monitor.settings import MonitorSettings
from ttlaunch.monitor.sweep_monitor import Monitor
from ttlaunch.records.jobs_file import JobRecord, SweepState
from ttlaunch.records.ledger import Ledger
from ttlaunch.records.sweep_lock import SweepLock
from ttlaunch.scheduler.submitit_files import folder, log_paths
from ttlaunch.submit import monitor_job
from ttlaunch.submit.monitor_job import MonitorSession
from ttlaunch.submit.plugin_protocols import Launcher
from ttlaunch.submit.selection import Selection, select_jobs, unrecorded_job_id
from ttlaunch.submit.submitter import Submission, Submitter, submit_and_watch, write_dry_run
from ttlaunch.submit.sweep_jobs import JobSpec

log = logging.getLogger(__name__)

Written = TypeVar("Written")


class AppLaunch(Protocol):
    """What one kind of app brings to the launch, checked and planned before anything is
    written: its jobs, how each is submitted, and the few steps that differ."""

    name: str  # the sweep's, in jobs.json: the experiment's or the app's
    sweep_dir: Path
    jobs: Sequence[JobSpec]
    settings: SubmissionSettings
    compute: ComputeConfig  # the preset's: where the monitor job (detach=true) runs
    combination_inputs: Mapping[tuple[str, ...], LaunchInputs]
    resubmit_failed: bool
    resubmit_hint: str  # what to add to the command to resubmit failed runs

    @property
    def inputs(self) -> LaunchInputs | None:
        """What the monitor's reactions (rules, evaluations) act on; None: an app without them."""

    def submissions(self, jobs: Sequence[JobSpec]) -> list[Submission]:
        """These jobs, as they are submitted."""

    def job_configs(self, submissions: Sequence[Submission]) -> CombinationConfigs | None:
        """Each job's composed config, composed once by the launch (None: each job composes its own)."""

    def check_records(self, ledger: Ledger) -> list[str]:
        """What the sweep's records refuse (InputError, nothing written yet); the jobs changed
        since they were submitted, to submit again."""

    def describe(self, state: SweepState) -> None:
        """What a monitor needs to resume from jobs.json alone."""

    def record_launch(self, ledger: Ledger) -> tuple[Sequence[str], str]:
        """The launch's provenance and its DISCOVER_EXPERIMENT entry; where the jobs import
        from first (a code snapshot) and the selection's details line."""

    def returns(self, records: Mapping[str, JobRecord]) -> list[JobReturn]:
        """What the sweep's jobs returned to Hydra; SweepFailed where the app's sweep fails as a whole."""


def launch(app: AppLaunch, launcher: Launcher, callback: SweepWatcher | None) -> list[JobReturn]:
    """Submit the app's planned jobs that the sweep's records leave to submit (all of them in a
    dry run, which writes their scripts only), then watch them through the monitor callback
    (to the end, or hand over to a monitor job); what the app's jobs returned."""
    sweep_dir = app.sweep_dir
    backend = backend_for(launcher.executor)
    if launcher.dry_run:  # no records of a launch that does not happen
        return write_dry_run(sweep_dir, backend, app.settings, app.submissions(app.jobs))
    check_monitoring(launcher, callback)
    writable(sweep_dir, lambda: sweep_dir.mkdir(parents=True, exist_ok=True))
    with SweepLock(sweep_dir):  # UnwritableSweep when it cannot write its lock file
        ledger = Ledger.open(sweep_dir, app.name)  # DamagedFile: one line, nothing written
        changed = app.check_records(ledger)  # before anything is written
        ledger.state.executor = launcher.executor
        ledger.state.stopped = None  # an early stop holds until the next launch (after a fix)
        app.describe(ledger.state)
        ledger.events.copy = Path(ledger.state.experiment_log) if ledger.state.experiment_log else None
        # The first write: a sweep dir that cannot take it is said now, before any submission.
        writable(ledger.state_path, ledger.save_state)
        import_paths, details = app.record_launch(ledger)
        settings = callback.settings() if callback is not None else MonitorSettings(live="off")
        selection = reconcile_and_select(
            ledger, app.jobs, Monitor(ledger, settings, backend), app.resubmit_failed, changed, details, app.resubmit_hint,
            rerun=launcher.relaunch is Relaunch.rerun,
            resume_pruned=app.inputs is not None and not app.inputs.pruning.enabled,
        )
        if selection.submit or selection.attach:
            submissions = app.submissions(selection.submit)
            job_callable = PrePickledJob(launcher, Singleton.get_state(), import_paths, app.job_configs(submissions))
            # One backend submits and watches: it follows the local jobs it starts through their handles.
            submitter = Submitter(ledger, app.settings, backend, job_callable)
            monitor, hand_over = None, None
            if callback is not None:
                training_jobs = {s.name: s.run_name for s in submissions if s.run_name is not None}
                session = MonitorSession(app.inputs, app.settings, settings, job_callable, app.combination_inputs, training_jobs)
                monitor = Monitor(ledger, settings, backend, reactions=session.reactions(ledger, submitter))
                hand_over = _hand_over(ledger, session, backend, app.compute)
            submit_and_watch(launcher, submitter, submissions, callback, monitor, hand_over)
        else:
            log.info("nothing to submit or watch: %d jobs of %s already ended", len(app.jobs), app.name)
        records = ledger.state.jobs
    return app.returns(records)


def _hand_over(ledger: Ledger, session: MonitorSession, backend: JobBackend, compute: ComputeConfig) -> Callable[[], str]:
    """detach=true: what submits the sweep's monitor job, when the watch detaches."""
    return lambda: monitor_job.hand_over(ledger, session, backend, compute)


def reconcile_and_select(
    ledger: Ledger, jobs: Sequence[JobSpec], monitor: Monitor, resubmit_failed: bool,
    changed: Sequence[str], details: str, resubmit_hint: str, rerun: bool, resume_pruned: bool = False,
) -> Selection:
    """Under the sweep's lock: learn what earlier launches left (jobs they submitted without
    recording them, then one poll), pick the jobs to submit, and record the choice."""
    if monitor.backend.jobs_outlive_launch:  # else they stopped with the launch that started them: none to adopt
        adopt_unrecorded(ledger, jobs)
    # What happened while nobody watched: one poll of the jobs earlier launches left running.
    monitor.poll()
    selection = select_jobs(jobs, ledger.state.jobs, resubmit_failed, changed, rerun, resume_pruned)
    ledger.events.write(
        "IDENTIFY_RUNS",
        "Selecting runs to submit",
        ("Details", details),
        (
            "Result",
            f"{len(selection.submit)} jobs ready to submit ({len(selection.completed)} already completed, "
            f"{len(selection.attach)} still queued or running, {len(selection.failed)} failed and not resubmitted, "
            f"{len(selection.changed)} changed and submitted again, {len(selection.resumed)} stopped by ttlaunch "
            f"and resumed, {len(selection.rerun)} ended and run again, {len(selection.pruned)} pruned, "
            f"{len(selection.unpruned)} pruned and resumed with pruning off)",
        ),
        ("Skipped", ", ".join(selection.completed + selection.attach + selection.failed + selection.pruned) or "none"),
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
    ("hydra.callbacks.monitor", "tracker_sync_every_s", 0, False),
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
    sync = getattr(monitor, "tracker_sync", "on")
    if sync not in ("on", "off"):
        raise InputError("hydra.callbacks.monitor", "tracker_sync (tracker.sync)", f"expected on or off, got {sync!r}")
    if not isinstance(getattr(monitor, "tracker_sync_from_monitor_job", False), bool):
        raise InputError(
            "hydra.callbacks.monitor", "tracker_sync_from_monitor_job (tracker.sync_from_monitor)",
            f"expected true or false, got {getattr(monitor, 'tracker_sync_from_monitor_job')!r}",
        )
    stagger = launcher.stagger
    if not (callable(getattr(stagger, "before_submit", None)) and callable(getattr(stagger, "startup_window", None))):
        raise InputError(
            "stagger", "_target_", f"{stagger!r} has no before_submit and startup_window (ttlaunch.job.stagger)"
        )
    if not isinstance(launcher.dry_run, bool):
        raise InputError("hydra.launcher", "dry_run", f"expected true or false, got {launcher.dry_run!r}")


def check_monitoring(launcher: Launcher, callback: SweepWatcher | None) -> None:
    """Queue caps need someone counting; the backend says what its jobs need watched."""
    if launcher.max_submitted is not None and callback is None:
        raise InputError("hydra.launcher", "max_submitted", "needs the monitor to count queued jobs (it was switched off)")
    detach = callback is not None and callback.settings().detach
    backend_for(launcher.executor).check_monitoring(callback is not None, detach)


def writable(path: Path, write: Callable[[], Written]) -> Written:
    """`write` (something in the sweep dir), and what it returned; UnwritableSweep, naming the
    path and the OS's reason, when the sweep dir cannot take it (read-only, full, no permission)."""
    try:
        return write()
    except OSError as err:
        raise UnwritableSweep(err.filename or path, err) from None


def ended_without_completing(record: JobRecord | None) -> bool:
    return record is not None and record.status.terminal and not record.status.as_intended
