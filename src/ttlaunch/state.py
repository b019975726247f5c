"""The sweep's state file, `jobs.json`: one record per job, rewritten atomically on each change."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

STATE_FILE_NAME = "jobs.json"
STATE_VERSION = 1


@dataclass
class JobRecord:
    run: str  # the job's name (its dir under the sweep)
    run_name: str | None = None  # the experiment's run it trains (a follow-up's differs from its name)
    kind: str = "training"  # or "evaluation" (of one task at one epoch of run_name)
    job_id: str | None = None
    status: str = "PENDING"
    attempt: int = 1
    submitted: str | None = None
    started: str | None = None
    completed: str | None = None
    elapsed: str | None = None
    exit_code: str | None = None
    job_dir: str | None = None
    output_dir: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    error: str | None = None
    # What the job asked for, so metrics need no config when monitoring resumes elsewhere.
    time_limit_s: int | None = None
    # Jobs of earlier submissions of this run (resubmitted after failing), oldest first.
    previous_job_ids: list[str] = field(default_factory=list)
    # Each requeue of the job: {"attempt": the attempt that ended, "reason", "at"}.
    requeues: list[dict[str, Any]] = field(default_factory=list)
    # Each restart by a rule (a new job for the same run): {"after": state, "previous_job_id", "at"}.
    restarts: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    # ttlaunch itself stopped the job (Ctrl-C of the launcher that ran it locally, a cancel
    # it issued): not a failure of the run, so the next launch resumes it from disk.
    stopped_by_ttlaunch: bool = False
    # What a planned run's job was submitted with: {parameters, compute, command} (a later
    # launch refuses to count it done once the summary, preset or payload says otherwise).
    submitted_with: dict[str, Any] = field(default_factory=dict)


@dataclass
class SweepState:
    experiment: str
    sweep_dir: str
    monitoring_started: str | None = None
    # What a monitor needs to resume from this file alone (`python -m ttlaunch.status`):
    executor: str = "local"  # local or slurm
    payload_kind: str | None = None  # torchtune runs get their checkpoints validated
    status_table: str | None = None  # the experiment's experiment_summary.md, when it has one
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    # Jobs the launch in progress will submit and has not yet (a launch killed meanwhile
    # leaves them here: the next one plans again from the records).
    unsubmitted: list[str] = field(default_factory=list)


def status_counts(records: Iterable[JobRecord], first: Sequence[str] = ()) -> dict[str, int]:
    """How many records have each status: the `first` statuses lead (0 when none has them),
    the others follow as met."""
    counts = dict.fromkeys(first, 0)
    for record in records:
        counts[record.status] = counts.get(record.status, 0) + 1
    return counts


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename it over `path`: a reader sees
    the old content or the new, never a half-written file."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_state(path: Path, state: SweepState) -> None:
    data = {"version": STATE_VERSION, **asdict(state)}
    write_atomically(path, json.dumps(data, indent=2) + "\n")


def load_state(path: Path, experiment: str, sweep_dir: Path) -> SweepState:
    """The saved state, or a fresh one when the sweep has none yet."""
    if not path.exists():
        return SweepState(experiment=experiment, sweep_dir=str(sweep_dir))
    data = json.loads(path.read_text(encoding="utf-8"))
    jobs = {name: JobRecord(**record) for name, record in data.get("jobs", {}).items()}
    return SweepState(
        experiment=data.get("experiment", experiment),
        sweep_dir=data.get("sweep_dir", str(sweep_dir)),
        monitoring_started=data.get("monitoring_started"),
        executor=data.get("executor", "local"),
        payload_kind=data.get("payload_kind"),
        status_table=data.get("status_table"),
        jobs=jobs,
        unsubmitted=list(data.get("unsubmitted", [])),
    )
