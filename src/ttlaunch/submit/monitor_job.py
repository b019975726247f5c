"""The monitor as a SLURM job (detach=true): after submitting, the launch hands its sweep to
one small job, `ttlaunch-monitor:<name>`, that monitors it to its end as the launch would
have (polls, records, evaluations, rules and restarts, results and pictures), then ends.

What that monitor needs beyond the sweep's records (the inputs, the submission settings and
the pickled job callable that evaluations and restarts are submitted with) is saved in the
sweep dir as its session (`monitor_session.pkl`), so that `ttlaunch status <sweep dir>
--follow` can finish the sweep the same way wherever it runs. The job is a submitit
Checkpointable: before its time limit, when preempted, or requeued from outside, it comes
back and carries on from jobs.json, the event log and rules.json. The sweep's lock still
means one monitor at a time: it waits for the launch that submitted it to let go.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from ttlaunch import __version__
from ttlaunch.backend.contract import JobBackend, JobRequest
from ttlaunch.backend.executors import backend_for
from ttlaunch.backend.job_requests import SubmissionSettings
from ttlaunch.base.errors import DamagedFile, SweepBusy
from ttlaunch.base.files import write_atomically
from ttlaunch.base.times import timestamp
from ttlaunch.inputs.launch_inputs import LaunchInputs
from ttlaunch.inputs.schema import ComputeConfig, RequeueConfig
from ttlaunch.job.job_callable import PrePickledJob
from ttlaunch.monitor.callback import reattach_hint
from ttlaunch.monitor.settings import MonitorSettings
from ttlaunch.monitor.sweep_monitor import Monitor, Reaction
from ttlaunch.records.ledger import Ledger
from ttlaunch.records.sweep_lock import SweepLock
from ttlaunch.records.sweep_summary import SUMMARY_NAME
from ttlaunch.scheduler import submitit_files
from ttlaunch.submit.submitter import Submitter, reactions_for

if TYPE_CHECKING:  # submitit loads only where jobs are submitted or run
    from submitit.helpers import DelayedSubmission

log = logging.getLogger(__name__)

SESSION_NAME = "monitor_session.pkl"
# The session file is a plain pickled header (format, ttlaunch version) around the cloudpickled
# MonitorSession, whose classes are this version's code: another version is refused, read
# first, in one line. 1: the header's first version (before it, the bare session); 2: the
# modules that define what it holds renamed (ttlaunch.inputs.launch_inputs, ...); 3: the job
# callable always there, holding the launch's composed configs.
SESSION_FORMAT = 3
# The monitor job's own dir in the sweep dir (hidden: not one of the sweep's jobs).
JOB_DIR_NAME = ".monitor_job"
JOB_NAME_PREFIX = "ttlaunch-monitor:"
# How long the monitor job waits for the sweep's lock: the launch that submitted it lets go
# within moments; a `ttlaunch status --follow` that holds it finishes the sweep itself.
LOCK_WAIT_S = 300.0
# Timeouts the monitor job comes back from (24 h each by default): a sweep of months.
MONITOR_TIMEOUTS = 100


@dataclass
class MonitorSession:
    """What a monitor needs to finish a sweep as its launch would have, beyond its records."""

    inputs: LaunchInputs | None  # None: any other Hydra app's sweep (no rules or evaluations)
    submission: SubmissionSettings
    settings: MonitorSettings
    job_callable: PrePickledJob  # what the launch submitted with: evaluations and restarts too
    # A command-line sweep's combinations' own inputs (OwnAppLaunch.combination_inputs).
    combination_inputs: Mapping[tuple[str, ...], LaunchInputs] = field(default_factory=dict)
    # The launch's training jobs, name -> run: what the summary's evaluations evaluate.
    training_jobs: Mapping[str, str] = field(default_factory=dict)

    def reactions(self, ledger: Ledger, submitter: Submitter) -> list[Reaction]:
        """What reacts to the monitor's polls (the rules, the evaluations), submitting through `submitter`."""
        if self.inputs is None:
            return []
        return reactions_for(self.inputs, ledger, submitter, self.combination_inputs, self.training_jobs)

    def monitor(self, ledger: Ledger, settings: MonitorSettings | None = None) -> Monitor:
        """A monitor of the sweep whose reactions (rules, evaluations) submit as the launch's did."""
        backend = backend_for(ledger.state.executor)
        submitter = Submitter(ledger, self.submission, backend, self.job_callable)
        return Monitor(ledger, settings or self.settings, backend, reactions=self.reactions(ledger, submitter))


def save_session(sweep_dir: Path, session: MonitorSession) -> None:
    # cloudpickle loads only where jobs are submitted (the job callable inside needs it).
    import cloudpickle

    header = {"format": SESSION_FORMAT, "ttlaunch": __version__, "session": cloudpickle.dumps(session)}
    write_atomically(sweep_dir / SESSION_NAME, pickle.dumps(header))


def load_session(sweep_dir: Path) -> MonitorSession | None:
    """The sweep's saved session; None for a sweep launched without one (attached). DamagedFile,
    saying what to do, for one another version of ttlaunch saved or that cannot be read."""
    path = sweep_dir / SESSION_NAME
    if not path.is_file():
        return None
    way_on = (
        f"Follow the sweep with the ttlaunch that launched it, or launch the same command again with this one: "
        f"it re-attaches, keeps the jobs done and saves a new session ({SESSION_NAME})"
    )
    try:
        header = pickle.loads(path.read_bytes())
    except Exception as err:  # cut short, or not a pickle at all: any error unpickling may raise
        raise DamagedFile(path, f"cannot be read as a monitor session ({type(err).__name__}: {err})", way_on) from None
    saved = (header.get("format"), header.get("ttlaunch")) if isinstance(header, dict) else (None, None)
    if saved != (SESSION_FORMAT, __version__):
        saved_by = "an older ttlaunch" if saved[1] is None else f"ttlaunch {saved[1]} (session format {saved[0]})"
        raise DamagedFile(path, f"saved by {saved_by}; this is ttlaunch {__version__} (format {SESSION_FORMAT})", way_on)
    try:
        session = pickle.loads(header["session"])
    except Exception as err:  # the classes it names moved or changed: any error unpickling may raise
        raise DamagedFile(path, f"names code this ttlaunch lacks ({type(err).__name__}: {err})", way_on) from None
    if not isinstance(session, MonitorSession):
        raise DamagedFile(path, f"holds a {type(session).__name__}, not a monitor session", way_on)
    return session


class MonitorJob:
    """What the monitor job runs (pickled by submitit): the sweep's monitor, from its records."""

    def __init__(self, sweep_dir: Path) -> None:
        self.sweep_dir = sweep_dir

    def __call__(self) -> None:
        session = load_session(self.sweep_dir)
        if session is None:
            raise RuntimeError(f"{self.sweep_dir / SESSION_NAME} is missing: nothing to monitor with")
        lock = SweepLock(self.sweep_dir)
        try:
            lock.acquire(wait_s=LOCK_WAIT_S)
        except SweepBusy as busy:  # someone follows the sweep already (ttlaunch status --follow)
            print(f"ttlaunch monitor job: {busy.holder} holds the sweep and follows it; nothing to do", flush=True)
            return
        try:
            ledger = Ledger.existing(self.sweep_dir)
            ended = all(record.status.terminal for record in ledger.state.jobs.values())
            if ended and (self.sweep_dir / SUMMARY_NAME).is_file():  # followed to its end elsewhere meanwhile
                print("ttlaunch monitor job: the sweep has ended and is reported; nothing to do", flush=True)
                return
            settings = session.settings
            if not settings.tracker_sync_from_monitor_job:  # on a compute node: often without network
                settings = replace(settings, tracker_sync="off")
            session.monitor(ledger, settings).follow()
        finally:
            lock.release()

    def checkpoint(self) -> DelayedSubmission:
        """The same job again, for submitit to requeue (time limit, preemption): it carries on
        from the records."""
        # submitit loads only where jobs are submitted or run.
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(MonitorJob(self.sweep_dir))


def monitor_job_request(name: str, compute: ComputeConfig, session: MonitorSession, backend: JobBackend) -> JobRequest:
    """What the monitor job asks for: one CPU, a little memory, no GPU, on the preset's
    partition unless the monitor's settings name one; requeued, by its own checkpoint
    (MONITOR_TIMEOUTS times at its time limit), not by the payloads' requeue budget."""
    settings, launch = session.settings, session.submission
    job_compute = replace(
        compute, partition=settings.job_partition or compute.partition, gpus_per_node=None, gpu_type=None, gres=None,
        constraint=None, nodes=1, tasks_per_node=1, cpus_per_task=1, mem_gb=settings.job_mem_gb,
        timeout_min=settings.job_timeout_min, setup=[], additional_parameters={},
    )
    submission = SubmissionSettings(
        RequeueConfig(enabled=False), launch.user, launch.signal_delay_s, launch.compute_source,
        submitit_timeouts=MONITOR_TIMEOUTS,
    )
    return backend.request(name, job_compute, submission)


def hand_over(ledger: Ledger, session: MonitorSession, backend: JobBackend, compute: ComputeConfig) -> str:
    """Submit the sweep's monitor job (on the preset's `compute`, as the launch's settings
    submit), unless its last one is still queued or running; what to tell the user."""
    sweep_dir = ledger.sweep_dir
    look = f"look with `ttlaunch status {sweep_dir}`"
    previous = ledger.state.monitor_job_id
    previous_state = backend.state_of(previous) if previous is not None else None
    if previous_state is not None and not previous_state.terminal:
        return f"detached: monitor job {previous} still follows the sweep; {look}"
    save_session(sweep_dir, session)
    name = f"{JOB_NAME_PREFIX}{ledger.state.experiment}"
    request = monitor_job_request(name, compute, session, backend)
    try:
        job = backend.submit(name, submitit_files.folder(sweep_dir / JOB_DIR_NAME), request, MonitorJob(sweep_dir), [])
    except Exception as err:  # the runs are submitted: say how to monitor them instead
        ledger.events.write("SUBMIT_FAILED", name, ("Error", str(err).strip()))
        return (
            f"detached, but {backend.runner} refused the monitor job ({str(err).strip()}); "
            f"follow with `{reattach_hint(sweep_dir)}`"
        )
    ledger.state.monitor_job_id = str(job.job_id)
    ledger.events.write(
        "MONITOR_JOB", name, ("Result", f"Job ID {job.job_id} submitted at {timestamp()}"), ("Log", str(job.paths.stdout)),
    )
    ledger.save()
    return f"detached: monitor job {job.job_id} ({name}) follows the sweep to its end; {look}"
