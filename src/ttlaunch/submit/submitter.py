"""Submit a sweep's jobs, recording each submission in the sweep's ledger.

Runs in the launching process, called by the Hydra launcher plugin. Jobs go in one at a time
with the stagger hook between them (or several at once when the hook allows it, and never
more than `max_submitted` in the queue). Each submission is in jobs.json before the next
one starts, so a launcher killed mid-sweep never leaves a job it submitted unrecorded.
Watching the jobs afterwards is the monitor's (ttlaunch.monitor.sweep_monitor); what its reactions (rules,
evaluations) submit later goes through the same submitter (`SweepActions`).
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import yaml
from hydra.core.utils import JobReturn, JobStatus

from ttlaunch.backend.contract import JobBackend, JobRequest
from ttlaunch.backend.job_requests import SubmissionSettings
from ttlaunch.base.errors import MonitorStopped, SweepInterrupted
from ttlaunch.base.times import timestamp
from ttlaunch.inputs.evaluation_plan import planned_evaluations
from ttlaunch.inputs.input_copies import INPUTS_DIR, copies_of, freeze
from ttlaunch.inputs.launch_inputs import LaunchInputs
from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.inputs.schema import ComputeConfig
from ttlaunch.job.job_callable import PrePickledJob
from ttlaunch.job.job_plan import JobPlan, save_plan, training_plan
from ttlaunch.job.stagger import StaggerHook
from ttlaunch.monitor.callback import SweepWatcher, reattach_hint
from ttlaunch.monitor.evaluations import EvaluationTrigger
from ttlaunch.monitor.pruning import Pruning
from ttlaunch.monitor.remediation import Remediation
from ttlaunch.monitor.rules import RulesEngine
from ttlaunch.monitor.sweep_monitor import Monitor, Reaction
from ttlaunch.records.jobs_file import JobRecord
from ttlaunch.records.ledger import Ledger
from ttlaunch.scheduler import submitit_files
from ttlaunch.scheduler.states import JobState
from ttlaunch.submit.plugin_protocols import Launcher
from ttlaunch.submit.sweep_jobs import combination_of, job_name_of, run_name_of

if TYPE_CHECKING:  # submitit loads only where jobs are submitted
    from submitit import Job

log = logging.getLogger(__name__)


@dataclass
class Submission:
    """One job to submit: where it lives, what it runs with and asks for."""

    index: int
    name: str
    overrides: list[str]
    job_dir: Path
    compute: ComputeConfig
    run_name: str | None = None  # the experiment's run it trains (None for any other Hydra app's job)
    output_dir: Path | None = None
    command: Sequence[str] | None = None  # what the job runs, as a dry run shows it
    spec: dict[str, object] = field(default_factory=dict)  # what a later launch compares (a run's submission_spec)
    # The run's files its job reads as it starts, by name, copied as it is submitted (ttlaunch.inputs.input_copies),
    # and those of them it runs.
    files: Mapping[str, Path] = field(default_factory=dict)
    run_files: frozenset[str] = frozenset()
    copies_from: Path | None = None  # or a copy of another job's copies (a rule's follow-up of it)
    # A planned run's inputs, from which its plan is worked out as it is submitted (ttlaunch.job.job_plan);
    # None: the job works its own out.
    inputs: LaunchInputs | None = None
    request: JobRequest | None = None  # set as it is submitted

    def freeze_inputs(self) -> None:
        """Take the copies the job will run from (before it is submitted)."""
        if self.files:
            freeze(self.job_dir, self.files, self.run_files)
        elif self.copies_from is not None and self.copies_from != self.job_dir:
            copies = copies_of(self.copies_from)
            if copies is not None:
                shutil.rmtree(self.job_dir / INPUTS_DIR, ignore_errors=True)
                shutil.copytree(copies, self.job_dir / INPUTS_DIR, symlinks=True)

    def plan(self) -> JobPlan | None:
        """What the job runs, from the copies it was given (after freeze_inputs); None: the job
        works its own plan out (ttlaunch.job.job_plan)."""
        if self.inputs is None or self.run_name is None:
            return None
        return training_plan(replace(self.inputs, copies=copies_of(self.job_dir)), self.run_name, self.job_dir)


def run_submission(job_inputs: LaunchInputs, sweep_dir: Path, index: int, overrides: Sequence[str]) -> Submission:
    """A planned run's job (its overrides name the run and the job; ttlaunch.submit.sweep_jobs),
    from its inputs (its combination's, its run parameters applied)."""
    name = job_name_of(overrides) or f"job{index}"
    run_name = run_name_of(overrides)
    if run_name is None:
        return Submission(index, name, list(overrides), sweep_dir / name, job_inputs.compute)
    command = job_inputs.payload_for(run_name, sweep_dir / name)
    return Submission(
        index=index, name=name, overrides=list(overrides), job_dir=sweep_dir / name, compute=job_inputs.compute_for(run_name),
        run_name=run_name, output_dir=command.output_dir, command=command.argv,
        spec=job_inputs.submission_spec(run_name, sweep_dir / name),
        files=job_inputs.input_paths(run_name, command), run_files=job_inputs.run_files(run_name, command),
        inputs=job_inputs,
    )


class Submitter:
    """One launch's submissions through the sweep's backend: the stagger, the cap, the records."""

    def __init__(self, ledger: Ledger, settings: SubmissionSettings, backend: JobBackend, job_callable: PrePickledJob) -> None:
        """`job_callable`: what every job of the launch runs, its follow-ups and evaluations too."""
        self.ledger = ledger
        self.sweep_dir = ledger.sweep_dir
        self.settings = settings
        self.backend = backend
        self.job_callable = job_callable
        self.submitted: list[str] = []  # job names handled by this launch, in order, rejected ones included
        self.overrides_by_name: dict[str, list[str]] = {}  # what each job of this launch was submitted with

    def submit_all(
        self,
        planned: Sequence[Submission],
        stagger: StaggerHook,
        max_submitted: int | None = None,
        monitor: Monitor | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> list[str]:
        """Submit each job; the job names, in order, rejected ones included.

        With `max_submitted`, waits (the monitor polling) until fewer of the sweep's jobs are
        pending or running before each submission. A hook allowing concurrent submissions
        (and no cap) gets its jobs submitted by several threads at once. A long staggered
        submission lets the monitor look at the jobs once per poll interval.
        """
        began = time.perf_counter()
        workers = getattr(stagger, "concurrent_submissions", 1)
        if workers > 1 and max_submitted is None:
            self._submit_concurrently(planned, workers)
        else:
            interval = monitor.poll_interval_s if monitor is not None else None
            last_poll = time.monotonic()
            for offset, submission in enumerate(planned):
                if max_submitted is not None:
                    # The launch refuses max_submitted without the monitor (sweep_launch.check_monitoring).
                    assert monitor is not None and interval is not None
                    while monitor.poll() >= max_submitted:
                        sleep(interval)
                if self.ledger.state.stopped is not None:  # the same error ended several runs (ttlaunch.monitor.remediation)
                    log.warning("submitted %d of %d runs: the rest are held back (%s)", offset, len(planned), self.ledger.state.stopped)
                    break
                stagger.before_submit(offset, len(planned))
                self._record(submission, *self._submit_one(submission))
                if monitor is not None and interval is not None and time.monotonic() - last_poll >= interval:
                    monitor.poll()
                    last_poll = time.monotonic()
        records = [self.ledger.state.jobs[name] for name in self.submitted]
        accepted = [str(record.job_id) for record in records if record.status is not JobState.SUBMIT_FAILED]
        self.ledger.events.write(
            "ALL_SUBMITTED",
            "Job submission complete",
            ("Summary", f"{len(accepted)} jobs submitted successfully ({len(records) - len(accepted)} failures)"),
            ("Job IDs", ", ".join(accepted) or "none"),
            ("Duration", f"{time.perf_counter() - began:.2f}s"),
        )
        return list(self.submitted)

    def submit_and_record(self, submission: Submission) -> Job[object] | None:
        """One more job, after submit_all (a rule's follow-up or restart, an evaluation), with
        the launch's job callable; its submitit job, or None when the scheduler refused it
        (recorded as SUBMIT_FAILED)."""
        job, error = self._submit_one(submission)
        self._record(submission, job, error)
        return job

    def _submit_one(self, submission: Submission) -> tuple[Job[object] | None, Exception | None]:
        """Submit one job (safe to call from several threads: each job has its own executor)."""
        try:
            # What the job asks for: computed once per submission, the source of its recorded
            # time limit and of its requeue budget.
            compute = excluding(submission.compute, self.ledger.state.excluded_now())
            submission.request = self.backend.request(submission.name, compute, self.settings)
            submission.freeze_inputs()
            save_plan(submission.job_dir, submission.plan())  # or an earlier job's plan goes
            args = (submission.overrides, "hydra.sweep.dir", submission.index, f"job_id_for_{submission.index}")
            job = self.backend.submit(
                submission.name, submitit_files.folder(submission.job_dir), submission.request, self.job_callable, args
            )
            return job, None
        except Exception as err:  # a rejected submission must not stop the others
            return None, err

    def _submit_concurrently(self, planned: Sequence[Submission], workers: int) -> None:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = pool.map(self._submit_one, planned)
            for submission, (job, error) in zip(planned, outcomes):  # recorded in order as they come
                self._record(submission, job, error)

    def _record(self, submission: Submission, job: Job[object] | None, error: Exception | None) -> None:
        name = submission.name
        previous = self.ledger.state.jobs.get(name)
        record = JobRecord(
            name=name, run_name=submission.run_name, job_dir=str(submission.job_dir),
            output_dir=str(submission.output_dir) if submission.output_dir else None,
            time_limit_s=submission.request.time_limit_s if submission.request else None,
            # A restart keeps what its run was submitted with: what a later launch compares.
            submitted_with=submission.spec or (previous.submitted_with if previous is not None else {}),
        )
        self.overrides_by_name[name] = submission.overrides
        if previous is not None:  # a resubmission keeps the run's history
            record.previous_job_ids = [*previous.previous_job_ids, *([previous.job_id] if previous.job_id else [])]
            record.restarts = list(previous.restarts)
        self.ledger.state.jobs[name] = record
        if name in self.ledger.state.unsubmitted:
            self.ledger.state.unsubmitted.remove(name)
        self.submitted.append(name)
        if job is None:
            record.status, record.error = JobState.SUBMIT_FAILED, str(error).strip()
            self.ledger.events.write("SUBMIT_FAILED", name, ("Error", record.error))
            log.error("submission of %s failed: %s", name, record.error)
        else:
            record.job_id, record.submitted = str(job.job_id), timestamp()
            # With stderr_to_stdout both streams are in the stdout file: the monitor reads it for either.
            record.stdout = str(job.paths.stdout)
            record.stderr = record.stdout if self.settings.submitit.stderr_to_stdout else str(job.paths.stderr)
            self.ledger.events.write(
                "SUBMIT_JOB", name, ("Executor", self.backend.name.value),
                ("Result", f"Job ID {job.job_id} submitted at {record.submitted}"),
                # What a rebuilt jobs.json needs (ttlaunch.records.rebuild) beyond the job dir's files:
                ("Run", record.run_name or name), ("Job dir", record.job_dir), ("Output dir", record.output_dir or "-"),
                ("Time limit", f"{record.time_limit_s} s"),
            )
            log.info("submitted %s as job %s", name, job.job_id)
        self.ledger.save()
        if job is not None and self.settings.submitit.folder:
            try:
                submitit_files.link_folder(self.settings.submitit.folder, submission.job_dir, str(job.job_id))
            except OSError as err:  # a convenience: the job and its records stand without it
                log.warning("%s: no link in hydra.launcher.submitit_folder: %s", name, err)


class SweepActions:
    """What the rules engine may do to the sweep from the launching process: submit a job
    that inherits another job's config (a follow-up, or the same run again), cancel a job."""

    def __init__(
        self, submitter: Submitter, inputs: LaunchInputs, combination_inputs: Mapping[tuple[str, ...], LaunchInputs]
    ) -> None:
        self.submitter = submitter
        self.inputs = inputs
        self.combination_inputs = combination_inputs  # a command-line sweep's combinations' own (OwnAppLaunch)

    def submit(
        self, job_name: str, run_name: str, template_job: str, overrides: Sequence[str], evaluation: bool = False,
        mem_gb: float | None = None,
    ) -> str | None:
        """Submit `job_name` with `template_job`'s overrides plus `overrides`; its job id
        (None when the scheduler refused it: recorded as SUBMIT_FAILED). An `evaluation` of
        the run asks for what the summary's evaluation.compute changes of the run's compute;
        `mem_gb`, more memory than it asks for (a restart after the node's memory ran out)."""
        submitter = self.submitter
        inherited = self._inherited(template_job)
        naming = [f"hydra.job.name={job_name}"]
        if "/" in job_name:  # an evaluation's run/task/epochN: nested dirs, a flat name for Hydra's log file
            naming = [f"hydra.job.name={job_name.replace('/', '.')}", f"hydra.sweep.subdir={job_name}"]
        index = len(submitter.submitted)
        compute = self.compute_of(template_job, run_name, evaluation)
        submission = Submission(
            index=index, name=job_name, overrides=[*inherited, f"run_name={run_name}", *naming, *overrides],
            job_dir=submitter.sweep_dir / job_name, run_name=run_name,
            compute=replace(compute, mem_gb=mem_gb) if mem_gb is not None else compute,
            output_dir=submitter.sweep_dir / job_name / "outputs",
            copies_from=None if evaluation else submitter.sweep_dir / template_job,
        )
        job = submitter.submit_and_record(submission)
        return str(job.job_id) if job is not None else None

    def compute_of(self, template_job: str, run_name: str, evaluation: bool) -> ComputeConfig:
        """What a job of the run asks for, as `template_job`'s combination has it (an
        evaluation: with the summary's evaluation.compute)."""
        inputs = self.combination_inputs.get(combination_of(self._inherited(template_job)), self.inputs)
        return inputs.evaluation_compute_for(run_name) if evaluation else inputs.compute_for(run_name)

    def _inherited(self, template_job: str) -> list[str]:
        """The template job's overrides less those that name it and its dir."""
        return [
            o for o in self._overrides_of(template_job)
            if not o.startswith(("hydra.job.name=", "hydra.sweep.subdir=", "run_name="))
        ]

    def _overrides_of(self, job_name: str) -> list[str]:
        """What a job was submitted with: by this launch, else as Hydra saved it in its dir."""
        known = self.submitter.overrides_by_name.get(job_name)
        if known is not None:
            return list(known)
        saved = self.submitter.sweep_dir / job_name / "hydra_configs" / "overrides.yaml"
        return [str(item) for item in yaml.safe_load(saved.read_text(encoding="utf-8")) or []]

    def nodes_of(self, job_name: str) -> list[str]:
        job_id = self.submitter.ledger.state.jobs[job_name].job_id
        return self.submitter.backend.nodes_of(job_id) if job_id else []

    def partition_size(self, partition: str | None) -> int | None:
        return self.submitter.backend.partition_size(partition)

    def cancel(self, job_name: str) -> None:
        record = self.submitter.ledger.state.jobs[job_name]
        record.stopped_by_ttlaunch = True
        self.submitter.backend.cancel(record)


def reactions_for(
    inputs: LaunchInputs, ledger: Ledger, submitter: Submitter, combination_inputs: Mapping[tuple[str, ...], LaunchInputs],
    training_jobs: Mapping[str, str],
) -> list[Reaction]:
    """What reacts to the monitor's polls in this launch: the `monitoring` rules and the
    scheduler of the summary's evaluations of its `training_jobs` (job name -> run), both
    acting through this launch's submitter, the remediation of failures and the early
    stopping of the points behind."""
    actions = SweepActions(submitter, inputs, combination_inputs)
    reactions: list[Reaction] = []
    remediation = inputs.remediation
    if remediation.enabled or remediation.same_error_stop:  # first: a rule's restart finds the job restarted already
        batch_keys = inputs.payload.batch_keys if inputs.payload_kind is PayloadKind.command else ()
        reactions.append(Remediation(remediation, ledger, actions, batch_keys))
    if not inputs.rules.empty:
        reactions.append(RulesEngine(inputs.rules, ledger, actions))
    if inputs.pruning.enabled:
        reactions.append(Pruning(inputs.pruning, inputs.evaluation, ledger, actions))
    targets = planned_evaluations(inputs.experiment, training_jobs, inputs.evaluation) if inputs.evaluation.enabled else []
    if targets:
        experiment = inputs.experiment
        given = {
            target.run: experiment.given_model(experiment.run(target.run)) for target in targets if target.training_job is None
        }
        reactions.append(EvaluationTrigger(targets, inputs.evaluation, ledger, actions, given))
    return reactions


def excluding(compute: ComputeConfig, nodes: Sequence[str]) -> ComputeConfig:
    """The compute request that leaves `nodes` out too (`sbatch --exclude`, with the user's own)."""
    if not nodes:
        return compute
    own = str(compute.additional_parameters.get("exclude") or "")
    names = sorted({*filter(None, own.split(",")), *nodes})
    return replace(compute, additional_parameters={**compute.additional_parameters, "exclude": ",".join(names)})


def write_dry_run(
    sweep_dir: Path, backend: JobBackend, settings: SubmissionSettings, planned: Sequence[Submission]
) -> list[JobReturn]:
    """Write each job's batch script (SLURM) or command (local) under <sweep>/dry_run/
    and print it; submit nothing."""
    out_dir = sweep_dir / "dry_run"
    out_dir.mkdir(parents=True, exist_ok=True)
    returns = []
    for submission in planned:
        name = submission.name
        payload_line = " ".join(submission.command) if submission.command else "(not a planned run)"
        request = backend.request(name, submission.compute, settings)
        file_name, text = backend.script(name, submitit_files.folder(submission.job_dir), request, payload_line)
        path = out_dir / file_name
        path.write_text(text, encoding="utf-8")
        print(f"==> {path}\n{text}")
        returns.append(JobReturn(status=JobStatus.COMPLETED, _return_value=str(path)))
    log.info("dry run: %d job scripts written to %s; nothing submitted", len(returns), out_dir)
    return returns


def interrupted_message(
    stopped: Sequence[str], names: Sequence[str], submitted: Sequence[str], again: str = "The same command again"
) -> str:
    """What a Ctrl-C of a local launch stopped, and exactly what `again` (the same command,
    or what to add to it) does next."""
    never = [name for name in names if name not in submitted]
    next_steps = []
    if stopped:
        next_steps.append(f"resumes {', '.join(stopped)} from what they saved")
    if never:
        next_steps.append(f"submits {len(never)} run(s) never submitted ({', '.join(never)})")
    what = f"stopped the local jobs of {', '.join(stopped)} (stopped, not failed)" if stopped else "no job was running"
    then = " and ".join(next_steps) or "finds nothing left to do"
    return f"interrupted: {what}. {again} {then}."


def submit_and_watch(
    launcher: Launcher, submitter: Submitter, planned: Sequence[Submission], callback: SweepWatcher | None,
    monitor: Monitor | None, hand_over: Callable[[], str] | None,
) -> list[str]:
    """Submit the planned jobs, then let the monitor callback watch the sweep (to its end,
    unless it detaches: then `hand_over`); the job names, in order. A Ctrl-C of a local
    launch stops its jobs (to be resumed by the same command); on SLURM they run on."""
    local = not submitter.backend.jobs_outlive_launch
    try:
        names = submitter.submit_all(planned, launcher.stagger, launcher.max_submitted, monitor)
        if callback is not None and monitor is not None:  # the monitor of the callback's settings
            callback.watch(monitor, hand_over)
        else:
            print(
                f"ttlaunch: submitted; monitoring is switched off. Follow with `{reattach_hint(submitter.sweep_dir)}`",
                file=sys.stderr, flush=True,
            )
    except MonitorStopped:
        if monitor is not None and local:
            monitor.stop_local_jobs()
        raise
    except KeyboardInterrupt:
        if monitor is None or not local:
            raise
        stopped = monitor.stop_local_jobs()
        names = [submission.name for submission in planned]
        again = "The same command again"
        if submitter.ledger.state.payload_kind is PayloadKind.app:  # Hydra's sweep dir is new at each launch; Hydra reruns
            again = f"The same command with hydra.sweep.dir={submitter.sweep_dir} hydra.launcher.relaunch=resume"
        raise SweepInterrupted(interrupted_message(stopped, names, submitter.submitted, again)) from None
    return names


def job_return(record: JobRecord) -> JobReturn:
    """Hydra's view of a job: COMPLETED (or pruned: ended as intended), FAILED with its
    reason, or UNKNOWN while it runs on."""
    if record.status.as_intended:
        return JobReturn(status=JobStatus.COMPLETED)
    if record.status.terminal:
        error = RuntimeError(f"job {record.name} ended {record.status}")
        return JobReturn(status=JobStatus.FAILED, _return_value=error)
    return JobReturn(status=JobStatus.UNKNOWN)
