"""The sweep's state file, `jobs.json`: one record per job, rewritten atomically on each change."""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

from ttlaunch import __version__
from ttlaunch.base.errors import DamagedFile
from ttlaunch.base.files import write_atomically
from ttlaunch.base.times import parse_timestamp
from ttlaunch.inputs.failure_causes import CausePattern, FailureCause
from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.inputs.schema import Executor
from ttlaunch.scheduler.states import JobState

STATE_FILE_NAME = "jobs.json"
# 2: jobs.json lists the jobs a launch has yet to submit (`unsubmitted`); a version 1 file
# reads as version 2 with none (its records' later fields take their defaults).
# 3: a job record names its job `name` (it was `run`, beside `run_name`, the experiment's run);
# older files are read with the field renamed.
# 4: a job record holds its training's progress (`training`) and its elapsed seconds
# (`elapsed_s`), an evaluation job its scores (`scores`); older files have none of these yet.
# 5: a job of any other Hydra app holds what its task function returned (`returned`).
# 6: the sweep names its monitor job (`monitor_job_id`, detach=true); older files have none.
# 7: a job that ended without completing has its `cause`, the sweep its user's `cause_patterns`,
# its early stop (`stopped`) and the nodes it leaves out (`excluded_nodes`); older files have none.
# 8: a training job names its W&B run's page once a sync learned it (`tracker_url`).
# 9: the sweep keeps its early stopping's decisions (`rungs`), a job the rung it was pruned at
# (`pruned_at`, state PRUNED); older files have none.
# 10: an evaluation job names the `tasks` it runs (all of one checkpoint's, one model load) and
# holds `scores` per task; an older file's evaluation ran the one task its name says, and its
# scores read as that task's.
STATE_VERSION = 10


class JobKind(str, enum.Enum):
    """What a job of the sweep does: its word in jobs.json, as JobState's."""

    TRAINING = "training"  # a run's training: its payload, a rule's follow-up, an app's task function
    EVALUATION = "evaluation"  # the evaluation of one epoch of run_name, or of a given model, on its tasks


class Evaluator(str, enum.Enum):
    """What the sweep's evaluation jobs run: its word in jobs.json."""

    INSPECT = "inspect"  # `inspect eval`: their scores are read from its log
    COMMAND = "command"  # any other command: no scores are read


@dataclass
class TrainingProgress:
    """How a job's training goes, from its own metric output (ttlaunch.monitor.training).
    Attempts after a requeue add to it: nothing is reset."""

    steps_done: int = 0  # the newest step logged
    steps_total: int | None = None  # epochs x steps per epoch, once known
    steps_per_epoch: int | None = None  # as torchtune's progress bar counts them
    loss: float | None = None  # at the newest step (the final loss, once the job ended)
    min_loss: float | None = None
    lr: float | None = None
    tokens_per_s: float | None = None
    peak_memory_gb: float | None = None
    step_time_s: float | None = None  # seconds per step, as the monitor saw steps come
    # Bytes read of each file the metrics come from: each poll reads only what is new.
    read: dict[str, int] = field(default_factory=dict)
    # Per metric source: [the step its numbering starts from, its last step as it numbers it]
    # (a resumed torchtune attempt numbers its steps from 1 again; ttlaunch.monitor.training_log).
    numbering: dict[str, list[int]] = field(default_factory=dict)
    # [wall-clock time, step, attempt] when this attempt's first step was seen: step_time_s runs from it.
    since: list[float] = field(default_factory=list)

    def remaining_s(self) -> float | None:
        """Seconds left at the measured pace; None until both the total and the pace are known."""
        if self.steps_total is None or self.step_time_s is None:
            return None
        return max(0, self.steps_total - self.steps_done) * self.step_time_s


@dataclass
class JobRecord:
    name: str  # the job's name (its dir under the sweep)
    run_name: str | None = None  # the experiment's run it trains (a follow-up's differs from its name)
    kind: JobKind = JobKind.TRAINING
    job_id: str | None = None
    status: JobState = JobState.PENDING
    attempt: int = 1
    submitted: str | None = None
    started: str | None = None
    completed: str | None = None
    elapsed: str | None = None
    elapsed_s: float | None = None  # the same, in seconds: accounting's, when there is accounting
    exit_code: str | None = None
    job_dir: str | None = None
    output_dir: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    error: str | None = None
    cause: FailureCause | None = None  # why it ended without completing (ttlaunch.inputs.failure_causes)
    # What the job asked for, so metrics need no config when monitoring resumes elsewhere.
    time_limit_s: int | None = None
    # Jobs of earlier submissions of this run (resubmitted after failing), oldest first.
    previous_job_ids: list[str] = field(default_factory=list)
    # Each requeue of the job: {"attempt": the attempt that ended, "reason", "at"}.
    requeues: list[dict[str, Any]] = field(default_factory=list)  # JSON objects as jobs.json holds them
    # Each restart by a rule (a new job for the same run): {"after": state, "previous_job_id", "at"}.
    restarts: list[dict[str, Any]] = field(default_factory=list)  # JSON objects as jobs.json holds them
    checkpoints: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)  # JSON: seff's and sacct's figures
    # ttlaunch itself stopped the job (Ctrl-C of the launcher that ran it locally, a cancel
    # it issued): not a failure of the run, so the next launch resumes it from disk.
    stopped_by_ttlaunch: bool = False
    # What a planned run's job was submitted with: {parameters, compute, command} (a later
    # launch refuses to count it done once the summary, preset or payload says otherwise).
    submitted_with: dict[str, Any] = field(default_factory=dict)  # JSON: the submission spec a later launch compares
    training: TrainingProgress | None = None
    # The evaluation tasks an evaluation job runs (the summary's names).
    tasks: list[str] = field(default_factory=list)
    # An evaluation job's scores per task, each from its inspect log: {"<task>": {"metrics":
    # {"<scorer>/<metric>": value}, "samples": N, "log": path}}; a task without scores is absent.
    scores: dict[str, Any] = field(default_factory=dict)  # JSON: inspect's metrics
    # What the task function of an app's job returned, once it completed: a number, a word or
    # a bool as it is, anything else as its repr (ttlaunch.scheduler.submitit_files.returned_value).
    returned: str | int | float | bool | None = None
    # The W&B page of the run's tracker run, once `wandb sync` of its offline dirs said it
    # (ttlaunch.monitor.tracker_sync).
    tracker_url: str | None = None
    # The rung its early stopping stopped it at (ttlaunch.monitor.pruning): its end is PRUNED.
    pruned_at: int | None = None

    def __post_init__(self) -> None:
        # A record read from JSON, or written with a word.
        self.status, self.kind = JobState(self.status), JobKind(self.kind)
        self.cause = FailureCause(self.cause) if self.cause is not None else None


@dataclass
class RungDecision:
    """One point's judgement at one rung of the sweep's early stopping (ttlaunch.monitor.pruning),
    made once and kept."""

    point: str  # its jobs' name less the replicate part (`lr1e-3` for `lr1e-3__seed-1`)
    rung: int  # epochs (or steps) trained
    measure: float  # its replicates' mean
    rank: int  # 1: the best of the points at the rung when it was judged
    reached: int  # how many points had reached the rung then, itself included
    kept: bool
    jobs: list[str]  # its replicates' jobs
    at: str


@dataclass
class SweepState:
    experiment: str
    sweep_dir: str
    monitoring_started: str | None = None
    # What a monitor needs to resume from this file alone (`python -m ttlaunch.status`):
    executor: Executor = Executor.local
    payload_kind: PayloadKind | None = None  # what the sweep's runs (not its evaluations) run
    monitor_job_id: str | None = None  # the SLURM job that monitors the sweep (detach=true), the latest
    # Where a kind=command trainer's metrics are (payload.metrics): a regex on its stdout, a
    # JSONL file in its output dir. torchtune's are found without them.
    metrics_pattern: str | None = None
    metrics_jsonl: str | None = None
    sort_by: str = "final_loss"  # the results table's order (report.sort_by)
    evaluator: Evaluator = Evaluator.INSPECT
    status_table: str | None = None  # the experiment's experiment_summary.md, when it has one
    # A copy of the event log in the experiment's own logs/ (a scaffold launched in place, as
    # cruijff_kit keeps its run-torchtune.log there).
    experiment_log: str | None = None
    # The user's own messages that tell a failure's cause (remediation.patterns), searched first.
    cause_patterns: list[CausePattern] = field(default_factory=list)
    # Why ttlaunch stopped submitting the sweep's runs (the same error ended several), until
    # the next launch; None while it submits.
    stopped: str | None = None
    # Nodes a node or interconnect failure happened on -> until when the sweep's submissions
    # leave them out (`sbatch --exclude`).
    excluded_nodes: dict[str, str] = field(default_factory=dict)
    # The early stopping's rule (pruning=halving), and each point's judgement at each rung in
    # the order made (ttlaunch.monitor.pruning).
    pruning: str | None = None
    rungs: list[RungDecision] = field(default_factory=list)
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    # Jobs the launch in progress will submit and has not yet (a launch killed meanwhile
    # leaves them here: the next one plans again from the records).
    unsubmitted: list[str] = field(default_factory=list)

    def excluded_now(self, now: dt.datetime | None = None) -> list[str]:
        """The nodes the sweep leaves out now (their time has not run out)."""
        moment = now or dt.datetime.now()
        return sorted(node for node, until in self.excluded_nodes.items() if (parse_timestamp(until) or moment) > moment)


def status_counts(records: Iterable[JobRecord], first: Sequence[str] = ()) -> dict[str, int]:
    """How many records have each status: the `first` statuses lead (0 when none has them),
    the others follow as met."""
    counts = dict.fromkeys(first, 0)
    for record in records:
        counts[record.status.value] = counts.get(record.status.value, 0) + 1
    return counts


_SWEEP_FIELDS = [item.name for item in fields(SweepState) if item.name != "jobs"]
_RECORD_FIELDS = [item.name for item in fields(JobRecord)]
_TRAINING_FIELDS = [item.name for item in fields(TrainingProgress)]
_compact = json.JSONEncoder(ensure_ascii=False).encode  # the C encoder: json.dumps with indent is Python's


def _record_data(record: JobRecord) -> dict[str, object]:
    """A record as JSON has it, its fields in their order. Not `asdict`: its deep copy of
    every list and dict was most of the time to write a 10,000-job sweep's file."""
    data = {name: getattr(record, name) for name in _RECORD_FIELDS}
    data["status"], data["kind"] = record.status.value, record.kind.value
    data["cause"] = record.cause.value if record.cause is not None else None
    if record.training is not None:
        data["training"] = {name: getattr(record.training, name) for name in _TRAINING_FIELDS}
    return data


def save_state(path: Path, state: SweepState) -> None:
    """The sweep's fields one per line, then each job record on a line of its own: readable
    and greppable by job, and written by the C encoder (5x faster at 10,000 jobs)."""
    head = [f"  {_compact(name)}: {_compact(_sweep_value(state, name))}" for name in _SWEEP_FIELDS]
    jobs = ",\n".join(f"    {_compact(name)}: {_compact(_record_data(record))}" for name, record in state.jobs.items())
    body = ",\n".join([f'  "version": {STATE_VERSION}', *head, f'  "jobs": {{\n{jobs}\n  }}' if jobs else '  "jobs": {}'])
    write_atomically(path, f"{{\n{body}\n}}\n")


def _sweep_value(state: SweepState, name: str) -> object:
    if name == "rungs":
        return [{item.name: getattr(decision, item.name) for item in fields(RungDecision)} for decision in state.rungs]
    if name == "cause_patterns":
        return [{"cause": pattern.cause.value, "pattern": pattern.pattern} for pattern in state.cause_patterns]
    return getattr(state, name)


def rebuild_hint(sweep_dir: Path) -> str:
    return (
        f"Rebuild it from the event log, the job dirs and the scheduler: `ttlaunch status {sweep_dir} --rebuild` "
        "(the damaged file is kept beside it)"
    )


def read_json_object(path: Path, way_on: str) -> dict[str, Any]:  # JSON values, checked field by field by the caller
    """The JSON object in one of the sweep's own files; DamagedFile when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise DamagedFile(path, f"not text (byte {err.start} is not UTF-8)", way_on) from None
    except json.JSONDecodeError as err:
        raise DamagedFile(path, f"not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})", way_on) from None
    if not isinstance(data, dict):
        raise DamagedFile(path, f"holds a JSON {type(data).__name__}, not an object", way_on)
    return data


def load_state(path: Path, experiment: str, sweep_dir: Path) -> SweepState:
    """The saved state, or a fresh one when the sweep has none yet. A file that is not a
    state ttlaunch can read (damaged, or from a newer ttlaunch) is DamagedFile, naming what
    is wrong and how to go on."""
    if not path.exists():
        return SweepState(experiment=experiment, sweep_dir=str(sweep_dir))
    way_on = rebuild_hint(sweep_dir)
    data = read_json_object(path, way_on)
    _check_version(data.get("version"), path, way_on)
    jobs = data.get("jobs", {})
    if not isinstance(jobs, dict):
        raise DamagedFile(path, "jobs is not an object of job records", way_on)
    unsubmitted = data.get("unsubmitted", [])
    if not (isinstance(unsubmitted, list) and all(isinstance(name, str) for name in unsubmitted)):
        raise DamagedFile(path, "unsubmitted is not a list of job names", way_on)
    texts = ("experiment", "sweep_dir", "monitoring_started", "executor", "payload_kind", "metrics_pattern", "metrics_jsonl",
             "sort_by", "evaluator", "status_table", "experiment_log", "monitor_job_id", "stopped", "pruning")
    for key in texts:
        if data.get(key) is not None and not isinstance(data[key], str):
            raise DamagedFile(path, f"{key} is {data[key]!r}, not text", way_on)
    for key, kind in (("executor", Executor), ("payload_kind", PayloadKind), ("evaluator", Evaluator)):
        if data.get(key) is not None and data[key] not in words_of(kind):
            raise DamagedFile(path, f"{key} is {data[key]!r}, not one of {', '.join(words_of(kind))}", way_on)
    return SweepState(
        experiment=data.get("experiment", experiment),
        sweep_dir=data.get("sweep_dir", str(sweep_dir)),
        monitoring_started=data.get("monitoring_started"),
        executor=Executor(data.get("executor") or Executor.local),
        payload_kind=PayloadKind(data["payload_kind"]) if data.get("payload_kind") is not None else None,
        monitor_job_id=data.get("monitor_job_id"),
        metrics_pattern=data.get("metrics_pattern"),
        metrics_jsonl=data.get("metrics_jsonl"),
        sort_by=data.get("sort_by") or "final_loss",
        evaluator=Evaluator(data.get("evaluator") or Evaluator.INSPECT),
        status_table=data.get("status_table"),
        experiment_log=data.get("experiment_log"),
        cause_patterns=_cause_patterns(data.get("cause_patterns", []), path, way_on),
        stopped=data.get("stopped"),
        excluded_nodes=_excluded_nodes(data.get("excluded_nodes", {}), path, way_on),
        pruning=data.get("pruning"),
        rungs=[_rung_decision(item, path, way_on) for item in _listed(data.get("rungs", []), "rungs", path, way_on)],
        jobs={name: _record(name, _current(record, data["version"]), path, way_on) for name, record in jobs.items()},
        unsubmitted=list(unsubmitted),
    )


_DECISION_TYPES = typing.get_type_hints(RungDecision)


def _listed(raw: object, key: str, path: Path, way_on: str) -> list[object]:
    if not isinstance(raw, list):
        raise DamagedFile(path, f"{key} is not a list", way_on)
    return raw


def _rung_decision(raw: object, path: Path, way_on: str) -> RungDecision:
    if not (isinstance(raw, dict) and set(raw) == set(_DECISION_TYPES)
            and all(fits_type(raw[key], hint) for key, hint in _DECISION_TYPES.items())):
        raise DamagedFile(path, f"rungs holds {raw!r}, not a pruning decision", way_on)
    return RungDecision(**raw)


def _excluded_nodes(raw: object, path: Path, way_on: str) -> dict[str, str]:
    if not (isinstance(raw, dict) and all(isinstance(key, str) and isinstance(value, str) for key, value in raw.items())):
        raise DamagedFile(path, "excluded_nodes is not an object of node names and times", way_on)
    return dict(raw)


def _cause_patterns(raw: object, path: Path, way_on: str) -> list[CausePattern]:
    patterns = []
    for item in raw if isinstance(raw, list) else [raw]:
        if not (isinstance(item, dict) and item.get("cause") in words_of(FailureCause) and isinstance(item.get("pattern"), str)):
            raise DamagedFile(path, f"cause_patterns holds {item!r}, not a cause and its pattern", way_on)
        try:
            patterns.append(CausePattern(FailureCause(item["cause"]), item["pattern"]))
        except re.error as err:
            raise DamagedFile(path, f"cause_patterns holds {item['pattern']!r}, not a regular expression ({err})", way_on) from None
    return patterns


def _check_version(version: object, path: Path, way_on: str) -> None:
    if isinstance(version, bool) or not isinstance(version, int):
        raise DamagedFile(path, f"version is {version!r}, not a state version number", way_on)
    if version > STATE_VERSION:
        raise DamagedFile(
            path, f"written by a newer ttlaunch (state version {version}; ttlaunch {__version__} reads versions up to "
            f"{STATE_VERSION})", "Upgrade ttlaunch where you launch and follow this sweep: pip install -U ttlaunch",
        )
    if version < 1:
        raise DamagedFile(path, f"state version {version} was never written by ttlaunch", way_on)


_RECORD_TYPES = typing.get_type_hints(JobRecord)
_STATES = {state.value for state in JobState}


def words_of(kind: type[enum.Enum]) -> list[str]:
    """The words a closed set's members are written as, in its order."""
    return [member.value for member in kind]


def _current(raw: object, version: int) -> object:
    """A job record of an older state version in the current shape."""
    if version < 3 and isinstance(raw, dict) and "run" in raw and "name" not in raw:
        raw = {("name" if key == "run" else key): value for key, value in raw.items()}
    if version < 10 and isinstance(raw, dict) and raw.get("kind") == JobKind.EVALUATION.value:
        # `<run>/<task>/epoch<N>` or `<run>/<task>`: the one task it ran.
        task = str(raw.get("name", "")).split("/")[1:2]
        scores = raw.get("scores")
        raw = {**raw, "tasks": task, "scores": {task[0]: scores} if task and scores else {}}
    return raw


def _record(name: str, raw: object, path: Path, way_on: str) -> JobRecord:
    """One job record, each field of the type JobRecord declares."""
    if not isinstance(raw, dict):
        raise DamagedFile(path, f"jobs.{name} is not a job record", way_on)
    unknown = sorted(set(raw) - set(_RECORD_TYPES))
    if unknown:
        raise DamagedFile(path, f"jobs.{name} has fields no job record has: {', '.join(unknown)}", way_on)
    for item in fields(JobRecord):
        if item.name in ("status", "kind", "cause", "training"):  # words, read as enums; a record of its own, below
            continue
        if item.name in raw and not fits_type(raw[item.name], _RECORD_TYPES[item.name]):
            raise DamagedFile(path, f"jobs.{name}.{item.name} is {raw[item.name]!r}, not of type {item.type}", way_on)
    if "name" not in raw:
        raise DamagedFile(path, f"jobs.{name} has no name", way_on)
    if raw.get("status", "PENDING") not in _STATES:
        raise DamagedFile(path, f"jobs.{name}.status is {raw['status']!r}, not a job state", way_on)
    if raw.get("kind", JobKind.TRAINING.value) not in words_of(JobKind):
        raise DamagedFile(path, f"jobs.{name}.kind is {raw['kind']!r}, not one of {', '.join(words_of(JobKind))}", way_on)
    if raw.get("cause") is not None and raw["cause"] not in words_of(FailureCause):
        raise DamagedFile(path, f"jobs.{name}.cause is {raw['cause']!r}, not one of {', '.join(words_of(FailureCause))}", way_on)
    training = raw.get("training")
    if training is not None:
        raw = {**raw, "training": _training(name, training, path, way_on)}
    return JobRecord(**raw)


_TRAINING_TYPES = typing.get_type_hints(TrainingProgress)


def _training(name: str, raw: object, path: Path, way_on: str) -> TrainingProgress:
    if not (isinstance(raw, dict) and set(raw) <= set(_TRAINING_TYPES)):
        raise DamagedFile(path, f"jobs.{name}.training is not a record of training progress", way_on)
    for key, value in raw.items():
        if not fits_type(value, _TRAINING_TYPES[key]):
            raise DamagedFile(path, f"jobs.{name}.training.{key} is {value!r}, not of type {_TRAINING_TYPES[key]}", way_on)
    return TrainingProgress(**raw)


def fits_type(value: object, hint: Any) -> bool:  # a dataclass field's type hint, as typing gives it
    """A value read from JSON is of a dataclass field's declared type (a JSON number without
    a fraction counts as a float; true and false are not numbers)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(fits_type(value, option) for option in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is not None:  # list[...], dict[...]: the container is checked, its items are read where used
        return isinstance(value, origin)
    if hint in (int, float):
        return isinstance(value, (int, hint)) and not isinstance(value, bool)
    return isinstance(value, hint)
