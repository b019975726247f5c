"""`ttlaunch status <sweep dir> --rebuild`: a new `jobs.json` for a sweep whose own was
damaged (cut short, edited), from what else the sweep left: the event log (each submission,
with its run, job dir, output dir and time limit), the job dirs' submitit files (job ids the log
missed) and one look at the scheduler. The damaged file is kept beside it.

What only jobs.json held is not rebuilt: compute metrics already collected, requeue and
restart history, what each job was submitted with (so a rebuilt job is not checked for
changed parameters), the early stopping's decisions (the log's PRUNING entries say them; a
pruned job is rebuilt as the scheduler saw it end, CANCELLED).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ttlaunch.base.errors import DamagedFile
from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.inputs.schema import Executor
from ttlaunch.records.event_log import EVENT_LOG_NAME, Event, read_events
from ttlaunch.records.jobs_file import STATE_FILE_NAME, JobKind, JobRecord, SweepState, load_state, words_of
from ttlaunch.records.rules_state import RULES_STATE_NAME, RulesState
from ttlaunch.records.status_table import MARKDOWN_NAME
from ttlaunch.scheduler.states import JobState
from ttlaunch.scheduler.submitit_files import has_batch_script, job_dirs, log_paths, submitted_job_ids

_SUBMITTED = re.compile(r"Job ID (\S+) (?:submitted at (.+)|found in .*)")
_SECONDS = re.compile(r"(\d+) s")


@dataclass
class Submission:
    """What the event log says of one job name: its submissions, newest last."""

    job_ids: list[str] = field(default_factory=list)
    submitted: str | None = None
    run_name: str | None = None
    job_dir: str | None = None  # when the log names it (every submission since jobs.json version 5)
    output_dir: str | None = None
    time_limit_s: int | None = None
    error: str | None = None  # the newest submission was refused


@dataclass
class Found:
    experiment: str | None = None
    summary: str | None = None  # the experiment summary's path
    executor: Executor | None = None
    app: bool = False  # a sweep of any other Hydra app than ttlaunch's
    jobs: dict[str, Submission] = field(default_factory=dict)


def read_log(events: list[Event]) -> Found:
    """What the event log tells of the sweep's submissions."""
    found = Found()
    for event in events:
        if event.action == "DISCOVER_EXPERIMENT":
            named = re.match(r"(Experiment|App) (\S+) has", event.fields.get("Result", ""))
            found.experiment = named.group(2) if named else found.experiment
            found.app = found.app or (named is not None and named.group(1) == "App")
            found.summary = event.fields.get("Details", found.summary)
        elif event.action == "SUBMIT_JOB":
            submitted = _SUBMITTED.fullmatch(event.fields.get("Result", ""))
            if submitted is None:
                continue
            job = found.jobs.setdefault(event.description, Submission())
            if submitted.group(1) not in job.job_ids:
                job.job_ids.append(submitted.group(1))
            job.submitted, job.error = submitted.group(2) or event.moment, None
            job.run_name = event.fields.get("Run", job.run_name)
            job.job_dir = event.fields.get("Job dir", job.job_dir)
            output_dir = event.fields.get("Output dir")
            job.output_dir = output_dir if output_dir not in (None, "-") else job.output_dir
            limit = _SECONDS.fullmatch(event.fields.get("Time limit", ""))
            job.time_limit_s = int(limit.group(1)) if limit else job.time_limit_s
            executor = event.fields.get("Executor")
            found.executor = Executor(executor) if executor in words_of(Executor) else found.executor
        elif event.action == "SUBMIT_FAILED":
            job = found.jobs.setdefault(event.description, Submission())
            job.error = event.fields.get("Error", "submission refused")
    return found


def rebuilt_state(sweep_dir: Path, found: Found, payload_kind: PayloadKind | None) -> SweepState:
    """Every job the log or the job dirs know, PENDING until the scheduler is asked."""
    logged_dirs = {Path(job.job_dir) for job in found.jobs.values() if job.job_dir}
    names = list(found.jobs) + [
        name for name in job_dirs(sweep_dir) if name not in found.jobs and sweep_dir / name not in logged_dirs
    ]
    state = SweepState(
        experiment=found.experiment or sweep_dir.name, sweep_dir=str(sweep_dir),
        payload_kind=PayloadKind.app if found.app else payload_kind,
    )
    if found.app:
        state.sort_by = "returned"
    state.executor = found.executor or (Executor.slurm if has_batch_script(sweep_dir) else Executor.local)
    if found.summary:
        table = Path(found.summary).parent / MARKDOWN_NAME
        state.status_table = str(table) if table.is_file() else None
    for name in names:
        logged = found.jobs.get(name, Submission())
        job_dir = Path(logged.job_dir) if logged.job_dir else sweep_dir / name
        ids = list(logged.job_ids) + [job_id for job_id in submitted_job_ids(job_dir) if job_id not in logged.job_ids]
        if found.app:  # an app's job: its task function writes where it likes, in its job dir
            record = JobRecord(name=name, job_dir=str(job_dir), time_limit_s=logged.time_limit_s)
        else:
            evaluation = "/" in name  # evaluations are named run/epochN, run/model, run/task/epochN
            record = JobRecord(
                name=name, run_name=logged.run_name or name.split("/")[0], job_dir=str(job_dir),
                kind=JobKind.EVALUATION if evaluation else JobKind.TRAINING,
                output_dir=logged.output_dir or str(job_dir / "outputs"), time_limit_s=logged.time_limit_s,
                tasks=_evaluation_tasks(job_dir) if evaluation else [],
            )
        if logged.error is not None and not ids[len(logged.job_ids):]:
            record.status, record.error = JobState.SUBMIT_FAILED, logged.error
            record.previous_job_ids = ids
        elif ids:
            record.job_id, record.previous_job_ids = ids[-1], ids[:-1]
            record.submitted = logged.submitted
            record.stdout, record.stderr = (str(path) for path in log_paths(job_dir, ids[-1]))
        else:
            continue  # a job dir that never held a submission
        state.jobs[name] = record
    return state


def _evaluation_tasks(job_dir: Path) -> list[str]:
    """The tasks an evaluation job ran, from the config Hydra saved in its dir (none before it started)."""
    try:
        config = yaml.safe_load((job_dir / "hydra_configs" / "config.yaml").read_text(encoding="utf-8"))
        target = config.get("evaluation_target") or {}
        tasks = target.get("tasks") or ([target["task"]] if target.get("task") else [])  # `task`: one job per task, before
        return [str(task) for task in tasks]
    except (OSError, yaml.YAMLError, AttributeError):
        return []


def set_aside(path: Path, now: dt.datetime | None = None) -> Path:
    """Rename a damaged file to <name>.damaged-<time>; where it went."""
    moment = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    kept = path.with_name(f"{path.name}.damaged-{moment}")
    path.rename(kept)
    return kept


def payload_kind_of(sweep_dir: Path) -> PayloadKind | None:
    """The payload kind the sweep was launched with (its saved multirun.yaml)."""
    saved = sweep_dir / "multirun.yaml"
    try:
        config = yaml.safe_load(saved.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    kind = (config or {}).get("payload", {}).get("kind") if isinstance(config, dict) else None
    return next((known for known in PayloadKind if known.value == kind), None)


def rebuild(sweep_dir: Path) -> tuple[SweepState, list[Path]]:
    """The rebuilt state (not yet saved, not yet polled) and the damaged files set aside
    (jobs.json; rules.json too when it is damaged)."""
    state_path = sweep_dir / STATE_FILE_NAME
    try:
        load_state(state_path, sweep_dir.name, sweep_dir)
    except DamagedFile:
        damaged = True
    else:
        if state_path.exists():
            raise FileExistsError(f"{state_path} is readable: nothing to rebuild (move it away to rebuild anyway)")
        damaged = False
    log_path = sweep_dir / EVENT_LOG_NAME
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.is_file() else ""
    state = rebuilt_state(sweep_dir, read_log(read_events(text)), payload_kind_of(sweep_dir))
    kept = [set_aside(state_path)] if damaged else []
    rules_path = sweep_dir / RULES_STATE_NAME
    try:
        RulesState.load(rules_path)
    except DamagedFile:  # the rules read the jobs' logs from their start again
        kept.append(set_aside(rules_path))
    return state, kept
