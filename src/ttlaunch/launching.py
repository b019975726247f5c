"""Submit a sweep's jobs and wait for them to end, recording each step.

Runs in the launching process, called by the Hydra launcher plugin. Jobs go in one at a time
with the stagger hook between them (or several at once when the hook allows it, and never
more than `max_submitted` in the queue). Waiting polls SLURM through ttlaunch.slurm (one
squeue per poll, one sacct for jobs that left the queue) or submitit's local jobs.
"""

from __future__ import annotations

import getpass
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus

from ttlaunch.composed import LaunchInputs
from ttlaunch.payload import PayloadCommand, build_payload
from ttlaunch.records import EVENT_LOG_NAME, EventLog, format_elapsed, timestamp
from ttlaunch.report import SUMMARY_NAME, CheckpointCheck, check_checkpoint, epoch_dirs, render_summary
from ttlaunch.requests import SlurmRequest, local_request, slurm_request
from ttlaunch.schema import ComputeConfig
from ttlaunch.slurm import SchedulerCommandError
from ttlaunch.states import JobState, parse_state
from ttlaunch.state import STATE_FILE_NAME, JobRecord, SweepState, load_state, save_state, write_atomically
from ttlaunch.stagger import StaggerHook
from ttlaunch.sweep import job_name_of, run_name_of

log = logging.getLogger(__name__)

# How long an interrupted launch waits for its local jobs to stop.
LOCAL_STOP_TIMEOUT_S = 60.0
# Accounting lags the scheduler: when seff has no data yet, ask once more after this.
METRICS_RETRY_S = 30.0
# States after which a job's compute metrics are collected (seed 002).
_METRICS_STATES = {JobState.COMPLETED, JobState.FAILED, JobState.TIMEOUT}


class PrePickledJob:
    """What each job runs: the launcher and Hydra's singleton state, pickled once per launch.

    submitit pickles the callable and its arguments for every job; pickling the launcher
    (the whole composed config and Hydra's context) 50 times costs more than the sbatch
    calls. Here each job's own pickle holds the same bytes and its overrides only.
    """

    def __init__(self, launcher: Any, singleton_state: Any) -> None:
        import cloudpickle

        self.blob = cloudpickle.dumps((launcher, singleton_state))

    def __call__(self, overrides: list[str], job_dir_key: str, index: int, job_id: str) -> Any:
        import pickle

        launcher, singleton_state = pickle.loads(self.blob)
        return launcher(overrides, job_dir_key, index, job_id, singleton_state)


@dataclass
class _Submission:
    index: int
    name: str
    run_name: str | None
    overrides: list[str]
    record: JobRecord


@dataclass
class Tracked:
    name: str
    job: Any  # a submitit Job; None when the submission was rejected
    state: JobState = JobState.PENDING
    started_at: float | None = None
    submitted_at: float = field(default_factory=time.monotonic)


def local_state(job: Any) -> JobState:
    """The state of a job of submitit's local executor (no scheduler to ask)."""
    raw = str(job.state)
    if raw == "FINISHED":  # success or failure is in the job's result
        return JobState.COMPLETED if job.exception() is None else JobState.FAILED
    return parse_state(raw)


@dataclass(frozen=True)
class Observation:
    """What one poll learnt of a job; times and exit code when accounting has them."""

    state: JobState
    started: str | None = None
    completed: str | None = None
    elapsed_s: int | None = None
    exit_code: str | None = None


def slurm_observations(job_ids: list[str], user: str) -> dict[str, Observation]:
    """One squeue for all of the user's jobs, one sacct for those that left the queue.

    A job in neither was submitted moments ago (slurmctld tells slurmdbd asynchronously):
    it is pending, not lost.
    """
    from ttlaunch import slurm
    from ttlaunch.metrics import seconds

    queued = slurm.squeue(user)
    observed = {job_id: Observation(queued[job_id].state) for job_id in job_ids if job_id in queued}
    gone = [job_id for job_id in job_ids if job_id not in queued]
    accounted = slurm.sacct(gone)
    for job_id in gone:
        entry = accounted.get(job_id)
        if entry is None:
            observed[job_id] = Observation(JobState.PENDING)
            continue
        observed[job_id] = Observation(
            entry.state, started=entry.start, completed=entry.end, elapsed_s=seconds(entry.elapsed), exit_code=entry.exit_code
        )
    return observed


class SweepRun:
    """One launch of a sweep: submission, state file and event log."""

    def __init__(
        self, sweep_dir: Path, inputs: LaunchInputs, executor_kind: str, signal_delay_s: int, alert_after_failures: int = 3
    ) -> None:
        self.sweep_dir = sweep_dir
        self.inputs = inputs
        self.executor_kind = executor_kind
        self.signal_delay_s = signal_delay_s
        self.events = EventLog(sweep_dir / EVENT_LOG_NAME)
        self.state_path = sweep_dir / STATE_FILE_NAME
        self.state: SweepState = load_state(self.state_path, inputs.experiment.name, sweep_dir)
        self.started = time.monotonic()
        self.tracked: list[Tracked] = []  # one entry per job handled so far, in order
        self.run_names: dict[str, str] = {}  # job name -> run name, for planned jobs
        self.consecutive_poll_failures = 0
        self.alert_after_failures = alert_after_failures
        # Metrics still to collect: (when, attempt, job).
        self.pending_metrics: list[tuple[float, int, Tracked]] = []

    def _executor(self, name: str, run_name: str | None) -> Any:
        from ttlaunch import executors  # submitit is imported only when submitting

        folder = self.sweep_dir / name / "submitit"
        if self.executor_kind == "slurm":
            request = self._slurm_request(name, run_name)
            for note in request.notes:
                log.info("%s: %s", name, note)
            return executors.slurm_executor(folder, request)
        return executors.local_executor(folder, local_request(name, self._compute(run_name)))

    def _slurm_request(self, name: str, run_name: str | None) -> SlurmRequest:
        return slurm_request(
            name, self._compute(run_name), self.inputs.requeue, self.inputs.user, self.signal_delay_s,
            self.inputs.compute_source,
        )

    def _compute(self, run_name: str | None) -> ComputeConfig:
        """The compute preset for a run (its own fields applied), or the preset itself."""
        return self.inputs.compute_for(run_name) if run_name else self.inputs.compute

    def _payload(self, name: str, run_name: str | None) -> PayloadCommand | None:
        if run_name is None:
            return None
        experiment = self.inputs.experiment
        return build_payload(
            experiment, experiment.run(run_name), self.inputs.payload, self.sweep_dir / name, self.inputs.payload_source
        )

    def _save(self) -> None:
        save_state(self.state_path, self.state)
        self._update_status_table()

    def _update_status_table(self) -> None:
        """Mirror the jobs into the experiment's experiment_summary.md, when it has one."""
        from ttlaunch.status_table import MARKDOWN_NAME, row_cells, update_status_table

        directory = self.inputs.experiment.directory
        markdown = directory / MARKDOWN_NAME if directory is not None else None
        if markdown is None or not markdown.is_file():
            return
        text = markdown.read_text(encoding="utf-8")
        updated = update_status_table(text, {name: row_cells(record) for name, record in self.state.jobs.items()})
        if updated is not None and updated != text:
            write_atomically(markdown, updated)

    def submit_all(
        self,
        callable_job: Any,
        job_overrides: Sequence[Sequence[str]],
        initial_job_idx: int,
        stagger: StaggerHook,
        max_submitted: int | None = None,
        poll_interval_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> list[Tracked]:
        """Submit each job; the result has one entry per job, in order, rejected ones included.

        With `max_submitted`, waits (polling) until fewer of the sweep's jobs are pending or
        running before each submission. A hook allowing concurrent submissions (and no cap)
        gets its jobs submitted by several threads at once.
        """
        began = time.perf_counter()
        job_callable = PrePickledJob(callable_job, Singleton.get_state())
        planned = [self._plan_submission(initial_job_idx + offset, overrides) for offset, overrides in enumerate(job_overrides)]
        workers = getattr(stagger, "concurrent_submissions", 1)
        if workers > 1 and max_submitted is None:
            self._submit_concurrently(job_callable, planned, workers)
        else:
            last_poll = time.monotonic()
            for offset, submission in enumerate(planned):
                if max_submitted is not None:
                    while len(self.poll(self.tracked)) >= max_submitted:
                        sleep(poll_interval_s)
                stagger.before_submit(offset, len(planned))
                self._record(submission, *self._submit_one(job_callable, submission))
                # A long staggered submission still sees jobs start, once per poll interval.
                if time.monotonic() - last_poll >= poll_interval_s:
                    self.poll(self.tracked)
                    last_poll = time.monotonic()
        submitted = [item.job.job_id for item in self.tracked if item.job is not None]
        self.events.write(
            "ALL_SUBMITTED",
            "Job submission complete",
            ("Summary", f"{len(submitted)} jobs submitted successfully ({len(self.tracked) - len(submitted)} failures)"),
            ("Job IDs", ", ".join(submitted) or "none"),
            ("Duration", f"{time.perf_counter() - began:.2f}s"),
        )
        self.state.monitoring_started = timestamp()
        self._save()
        return self.tracked

    def _plan_submission(self, index: int, overrides: Sequence[str]) -> _Submission:
        name = job_name_of(overrides) or f"job{index}"
        run_name = run_name_of(overrides)
        if run_name is not None:
            self.run_names[name] = run_name
        command = self._payload(name, run_name)
        record = JobRecord(
            run=name, job_dir=str(self.sweep_dir / name), output_dir=str(command.output_dir) if command else None
        )
        return _Submission(index=index, name=name, run_name=run_name, overrides=list(overrides), record=record)

    def _submit_one(self, callable_job: Any, submission: _Submission) -> tuple[Any, Exception | None]:
        """Submit one job (safe to call from several threads: each job has its own executor)."""
        try:
            executor = self._executor(submission.name, submission.run_name)
            job = executor.submit(
                callable_job, submission.overrides, "hydra.sweep.dir", submission.index, f"job_id_for_{submission.index}"
            )
            return job, None
        except Exception as err:  # a rejected submission must not stop the others
            return None, err

    def _submit_concurrently(self, callable_job: Any, planned: list[_Submission], workers: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = pool.map(lambda submission: self._submit_one(callable_job, submission), planned)
            # Recorded in order as they come; jobs.json is written once submission ends.
            for submission, (job, error) in zip(planned, outcomes):
                self._record(submission, job, error, save=error is not None)

    def _record(self, submission: _Submission, job: Any, error: Exception | None, save: bool = True) -> None:
        name, record = submission.name, submission.record
        self.state.jobs[name] = record
        if job is None:
            record.status, record.error = JobState.SUBMIT_FAILED.value, str(error).strip()
            self.events.write("SUBMIT_FAILED", name, ("Error", record.error))
            log.error("submission of %s failed: %s", name, record.error)
            self.tracked.append(Tracked(name=name, job=None, state=JobState.SUBMIT_FAILED))
        else:
            record.job_id, record.submitted = str(job.job_id), timestamp()
            record.stdout, record.stderr = str(job.paths.stdout), str(job.paths.stderr)
            self.events.write(
                "SUBMIT_JOB", name, ("Executor", self.executor_kind),
                ("Result", f"Job ID {job.job_id} submitted at {record.submitted}"),
            )
            log.info("submitted %s as job %s", name, job.job_id)
            self.tracked.append(Tracked(name=name, job=job))
        if save:
            self._save()

    def dry_run(self, job_overrides: Sequence[Sequence[str]]) -> list[JobReturn]:
        """Write each job's batch script (SLURM) or command (local) under <sweep>/dry_run/
        and print it; submit nothing."""
        from ttlaunch import executors

        out_dir = self.sweep_dir / "dry_run"
        out_dir.mkdir(parents=True, exist_ok=True)
        returns = []
        for index, overrides in enumerate(job_overrides):
            name = job_name_of(overrides) or f"job{index}"
            run_name = run_name_of(overrides)
            command = self._payload(name, run_name)
            payload_line = " ".join(command.argv) if command else "(not a planned run)"
            if self.executor_kind == "slurm":
                text = executors.sbatch_script(self.sweep_dir / name / "submitit", self._slurm_request(name, run_name))
                text += f"# payload: {payload_line}\n"
                path = out_dir / f"{name}.sbatch"
            else:
                text = f"# local job {name}\n{payload_line}\n"
                path = out_dir / f"{name}.sh"
            path.write_text(text, encoding="utf-8")
            print(f"==> {path}\n{text}")
            returns.append(JobReturn(status=JobStatus.COMPLETED, _return_value=str(path)))
        log.info("dry run: %d job scripts written to %s; nothing submitted", len(returns), out_dir)
        return returns

    def poll(self, tracked: list[Tracked]) -> list[Tracked]:
        """Update every job not yet ended; return those still not ended."""
        active = [item for item in tracked if not item.state.terminal]
        if self.executor_kind == "slurm" and active:
            try:
                observed = slurm_observations([item.job.job_id for item in active], getpass.getuser())
            except SchedulerCommandError as err:  # logged; the next poll tries again
                self._poll_failed(err)
                return active
            self.consecutive_poll_failures = 0
            for item in active:
                self._update(item, observed[item.job.job_id])
        else:
            for item in active:
                self._update(item, Observation(local_state(item.job)))
        return [item for item in tracked if not item.state.terminal]

    def wait(self, tracked: list[Tracked], poll_interval_s: float, sleep: Callable[[float], None] = time.sleep) -> None:
        while True:
            active = self.poll(tracked)
            self._status_check(tracked)
            self._collect_due_metrics()
            if not active and not self.pending_metrics:
                break
            next_metrics = min((due for due, _, _ in self.pending_metrics), default=None)
            wait_s = poll_interval_s if active or next_metrics is None else max(0.0, next_metrics - time.monotonic())
            sleep(min(poll_interval_s, wait_s))
        checks = self.validate()
        counts = self._counts()
        self.events.write(
            "ALL_COMPLETE",
            "Monitoring finished",
            ("Summary", f"{len(self.state.jobs)} jobs finished - " + ", ".join(f"{n} {s}" for s, n in counts.items())),
            ("Total time", format_elapsed(time.monotonic() - self.started)),
        )
        self.write_summary(checks)

    def validate(self) -> dict[str, CheckpointCheck]:
        """Each completed torchtune run must have left a usable checkpoint; flag those that did not."""
        checks: dict[str, CheckpointCheck] = {}
        if self.inputs.payload.kind != "torchtune":  # other payloads have no checkpoint layout to check
            return checks
        for name, record in self.state.jobs.items():
            if record.status == JobState.COMPLETED.value and record.output_dir:
                check = checks[name] = check_checkpoint(Path(record.output_dir))
                result = f"OK: {check.checkpoint}" if check.ok else f"FLAGGED: {check.problem}"
                self.events.write("VALIDATION", name, ("Checkpoint", result))
        return checks

    def write_summary(self, checks: dict[str, CheckpointCheck]) -> None:
        """summary.md in the sweep dir, written atomically, and printed."""
        summary = render_summary(self.state, checks, self.events.path)
        write_atomically(self.sweep_dir / SUMMARY_NAME, summary)
        print(summary, flush=True)

    def stop_local_jobs(self, sleep: Callable[[float], None] = time.sleep) -> None:
        """After Ctrl-C: local jobs are children of this process and must not outlive it
        unattended; cancel them and wait until they ended. SLURM jobs are left running."""
        if self.executor_kind != "local":
            return
        running = [item for item in self.tracked if item.job is not None and not item.state.terminal]
        for item in running:
            item.job.cancel(check=False)
        deadline = time.monotonic() + LOCAL_STOP_TIMEOUT_S
        while any(not item.job.done() for item in running) and time.monotonic() < deadline:
            sleep(0.2)
        self.poll(running)

    def _status_check(self, tracked: list[Tracked]) -> None:
        counts = {state: 0 for state in ("PENDING", "RUNNING", "COMPLETED")}
        for item in tracked:
            counts[item.state.value] = counts.get(item.state.value, 0) + 1
        summary = ", ".join(f"{count} {state}" for state, count in counts.items())
        what = f"squeue -u {getpass.getuser()}" if self.executor_kind == "slurm" else "submitit local jobs"
        self.events.write("STATUS_CHECK", "Polling", ("Command", what), ("Result", f"{len(tracked)} jobs found - {summary}"))

    def _collect_due_metrics(self) -> None:
        """seff for each ended job; one retry after METRICS_RETRY_S when accounting has no data
        yet, then the same figures from sacct."""
        import shutil

        from ttlaunch import metrics, slurm

        now = time.monotonic()
        have_seff = shutil.which("seff") is not None
        due = [entry for entry in self.pending_metrics if entry[0] <= now]
        self.pending_metrics = [entry for entry in self.pending_metrics if entry[0] > now]
        for _, attempt, item in due:
            job_id = str(item.job.job_id)
            try:
                from_sacct, limit_s = metrics.parse_usage(slurm.usage(job_id))
                try:
                    from_seff = metrics.parse_seff(slurm.seff(job_id)) if have_seff else None
                except SchedulerCommandError:
                    from_seff = None
            except SchedulerCommandError as err:
                self.events.write("POLL_FAILED", f"Accounting for {item.name} failed", ("Error", str(err)))
                from_sacct, limit_s, from_seff = None, None, None
            if from_seff is None and attempt == 1 and have_seff:
                self.pending_metrics.append((now + METRICS_RETRY_S, 2, item))
                continue
            result = from_seff or from_sacct
            if limit_s is None:  # accounting may lag; the limit is what we asked for
                limit_s = 60 * self._compute(self.run_names.get(item.name)).timeout_min
            if result is None:
                self.events.write("COMPUTE_METRICS", item.name, ("Job ID", job_id), ("Result", "no accounting data"))
                continue
            fields = metrics.entry_fields(job_id, result, limit_s, timed_out=item.state is JobState.TIMEOUT)
            self.events.write("COMPUTE_METRICS", item.name, *fields)
            self.state.jobs[item.name].metrics = {**result.as_record(), "time_limit_s": limit_s}
            self._save()

    def _counts(self) -> dict[str, int]:
        counts = {JobState.COMPLETED.value: 0, JobState.FAILED.value: 0}
        for record in self.state.jobs.values():
            counts[record.status] = counts.get(record.status, 0) + 1
        return counts

    def _poll_failed(self, err: SchedulerCommandError) -> None:
        self.consecutive_poll_failures += 1
        count = self.consecutive_poll_failures
        self.events.write("POLL_FAILED", "Querying SLURM failed", ("Error", str(err)), ("Consecutive failures", count))
        log.warning("polling SLURM failed (%d in a row): %s", count, err)
        if count == self.alert_after_failures:
            message = (
                f"SLURM has not answered {count} polls in a row; jobs keep running. Check `squeue`/`sacct` "
                "by hand or ask your admins; ttlaunch keeps polling."
            )
            self.events.write("POLL_FAILED", "Alert: repeated failures", ("Alert", message))
            log.error(message)

    def _update(self, item: Tracked, observation: Observation) -> None:
        current = observation.state
        if current is item.state or current is JobState.UNKNOWN:
            return
        previous, item.state = item.state, current
        record = self.state.jobs[item.name]
        record.status = current.value
        fields: list[tuple[str, object]] = [("Previous", previous.value), ("Current", current.value), ("Job ID", record.job_id)]
        now = time.monotonic()
        if current is JobState.RUNNING or (current.terminal and item.started_at is None):
            item.started_at = now
            record.started = observation.started or timestamp()
            if current is JobState.RUNNING:
                fields.append(("Started", record.started))
        if current.terminal:
            record.completed = observation.completed or timestamp()
            if observation.started:
                record.started = observation.started  # accounting's time beats our sighting
            seconds_run = observation.elapsed_s if observation.elapsed_s is not None else now - (item.started_at or item.submitted_at)
            record.elapsed = format_elapsed(seconds_run)
            record.exit_code = observation.exit_code
            if record.output_dir:
                record.checkpoints = [str(path) for path in epoch_dirs(Path(record.output_dir))]
            fields += [("Completed", record.completed), ("Elapsed", record.elapsed)]
            if current is not JobState.COMPLETED:
                if record.exit_code:
                    fields.append(("Exit code", record.exit_code))
                fields.append(("Log", record.stderr))
        self.events.write("STATE_CHANGE", item.name, *fields)
        log.info("%s: %s -> %s", item.name, previous.value, current.value)
        self._save()
        if self.executor_kind == "slurm" and current in _METRICS_STATES:
            self.pending_metrics.append((time.monotonic(), 1, item))


def job_returns(tracked: list[Tracked]) -> list[JobReturn]:
    """Hydra's view of the ended jobs, one per job in order; a failed one carries its reason."""
    returns = []
    for item in tracked:
        if item.state is JobState.COMPLETED:
            returns.append(item.job.results()[0])
            continue
        error = RuntimeError(f"job {item.name} ended {item.state.value}")
        returns.append(JobReturn(status=JobStatus.FAILED, _return_value=error))
    return returns
