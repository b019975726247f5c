"""The results of a sweep: one row per training run, for comparing runs (pure), and one per
run evaluated on a model the sweep does not train (a control's base model, an eval-only
run's checkpoint), its scores beside theirs.

A row has the swept parameters (those whose values differ between the runs, from the
summary and the command-line sweep alike), how training went (final and minimum loss,
tokens/s, from ttlaunch.monitor.training; for any other Hydra app's job, what its task
function returned) and what it cost: wall time, attempts, and GPU-hours (elapsed time x GPUs
allocated; CPU-hours on presets without GPUs). Columns no row has a value for are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Mapping

from ttlaunch.base.times import format_elapsed, parse_timestamp
from ttlaunch.inputs.evaluation_plan import evaluated
from ttlaunch.inputs.schema import ComputeConfig
from ttlaunch.records.jobs_file import JobKind, JobRecord, SweepState

# What the table can be sorted by, besides a parameter's name and an evaluation task's
# name (its score); those better when larger come first when largest, the others when smallest.
SORT_KEYS = ("final_loss", "min_loss", "tokens_per_s", "wall_time", "attempts", "hours", "returned")
LARGER_IS_BETTER = frozenset({"tokens_per_s"})


def sort_columns(parameters: Iterable[str], tasks: Iterable[str]) -> list[str]:
    """What the results can be sorted by: the measures, the runs' parameters, the evaluation
    tasks (their scores)."""
    return [*SORT_KEYS, *sorted(set(parameters)), *sorted(set(tasks))]


@dataclass(frozen=True)
class ResultRow:
    run: str
    status: str
    parameters: Mapping[str, Any]  # the summary's values, of whatever type it gave
    final_loss: float | None
    min_loss: float | None
    tokens_per_s: float | None
    wall_time_s: float | None
    attempts: int | None  # None: not trained in this sweep
    hours: float | None  # GPU-hours, or CPU-hours when `unit` is CPU
    unit: str  # "GPU" or "CPU"
    # Per evaluation task: (the newest epoch evaluated, or None for a model as the summary
    # gives it; its headline metric's name; its value).
    scores: Mapping[str, tuple[int | None, str, float]] = field(default_factory=dict)
    returned: Any = None  # what an app's task function returned
    cause: str | None = None  # why it ended without completing
    # What restarts changed of how it trains (`batch 8→4 × accum 1→2`): its results read with it.
    changed: str | None = None

    @property
    def trained(self) -> bool:
        return self.attempts is not None

    def value(self, key: str) -> Any:  # a column's value: a number, a word or a parameter's
        if key == "wall_time":
            return self.wall_time_s
        if key in self.scores:
            return self.scores[key][2]
        if key in SORT_KEYS:
            return getattr(self, key)
        return self.parameters.get(key)


def seconds_run(record: JobRecord) -> float | None:
    """How long the job ran: accounting's elapsed time, else from its start to its end."""
    if record.elapsed_s is not None:
        return record.elapsed_s
    started, completed = parse_timestamp(record.started), parse_timestamp(record.completed)
    return (completed - started).total_seconds() if started and completed else None


def allocation(record: JobRecord) -> tuple[int, str]:
    """GPUs of the job (nodes x GPUs per node), or its CPUs on a preset without GPUs, as it
    was submitted with (one CPU where that is not recorded)."""
    recorded = record.submitted_with.get("compute", {})
    known = {item.name for item in fields(ComputeConfig)}
    compute = ComputeConfig(**{key: value for key, value in recorded.items() if key in known})
    if compute.gpus:
        return compute.gpus * compute.nodes, "GPU"
    return (compute.cpus_per_task or 1) * compute.tasks_per_node * compute.nodes, "CPU"


def hours_of(record: JobRecord, seconds: float) -> float:
    """GPU-hours (CPU-hours without GPUs) of `seconds` of the job's allocation."""
    return seconds * allocation(record)[0] / 3600


def _scores_by_run(state: SweepState) -> dict[str, dict[str, tuple[int | None, str, float]]]:
    """Each run's evaluation scores per task, at the newest epoch evaluated."""
    found: dict[str, dict[str, tuple[int | None, str, float]]] = {}
    for name, record in state.jobs.items():
        target = evaluated(name)
        if record.kind is not JobKind.EVALUATION or target is None:
            continue
        run, epoch = target
        for task, task_scores in record.scores.items():  # each task's, whether or not another failed
            metrics = task_scores.get("metrics")
            if not metrics:
                continue
            metric, value = next(iter(metrics.items()))
            newest = found.get(run, {}).get(task, (None, "", 0.0))[0]
            if isinstance(value, (int, float)) and (newest is None or (epoch is not None and epoch >= newest)):
                found.setdefault(run, {})[task] = (epoch, metric, float(value))
    return found


def result_rows(state: SweepState) -> list[ResultRow]:
    """One row per training job of the sweep, in the order of jobs.json."""
    training = {name: record for name, record in state.jobs.items() if record.kind is JobKind.TRAINING}
    scores = _scores_by_run(state)
    parameters = {name: dict(record.submitted_with.get("parameters", {})) for name, record in training.items()}
    rows = []
    for name, record in training.items():
        progress = record.training
        seconds = seconds_run(record)
        unit = allocation(record)[1]
        rows.append(ResultRow(
            run=name, status=record.status.value, parameters=parameters[name],
            final_loss=progress.loss if progress else None, min_loss=progress.min_loss if progress else None,
            tokens_per_s=progress.tokens_per_s if progress else None, wall_time_s=seconds,
            attempts=record.attempt + len(record.previous_job_ids),
            hours=hours_of(record, seconds) if seconds is not None else None, unit=unit, scores=scores.get(name, {}),
            returned=record.returned, cause=record.cause.value if record.cause is not None else None,
            changed="; ".join(str(entry["change"]) for entry in record.restarts if entry.get("change") not in (None, "as it was"))
            or None,
        ))
    runs_evaluated = {name: target[0] for name in state.jobs for target in [evaluated(name)] if target is not None}
    for run, run_scores in scores.items():  # runs evaluated on a model the sweep does not train
        if run in training:
            continue
        record = next(state.jobs[name] for name, evaluated_run in runs_evaluated.items() if evaluated_run == run)
        rows.append(ResultRow(
            run=run, status=record.status.value, parameters={}, final_loss=None, min_loss=None, tokens_per_s=None,
            wall_time_s=None, attempts=None, hours=None, unit=allocation(record)[1], scores=run_scores,
        ))
    return rows


def swept_parameters(rows: list[ResultRow]) -> list[str]:
    """The parameters whose values differ between the runs trained, in the order first met."""
    trained = [row for row in rows if row.trained]
    names: list[str] = []
    for row in trained:
        names += [name for name in row.parameters if name not in names]
    return [name for name in names if len({repr(row.parameters.get(name)) for row in trained}) > 1]


def sorted_rows(rows: list[ResultRow], key: str) -> list[ResultRow]:
    """Best first by `key`; rows without a value for it last, in their order."""
    known = [row for row in rows if _sortable(row.value(key))]
    unknown = [row for row in rows if not _sortable(row.value(key))]
    larger_is_better = key in LARGER_IS_BETTER or any(key in row.scores for row in rows)
    known.sort(key=lambda row: row.value(key), reverse=larger_is_better)
    return known + unknown


def _sortable(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _cell(value: object, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


# The measures of a run's outcome: (column title, sort key), shown when some row has one.
_MEASURES = (("Final loss", "final_loss"), ("Min loss", "min_loss"), ("Tokens/s", "tokens_per_s"), ("Returned", "returned"))


def results_table(state: SweepState, sort_by: str) -> list[str]:
    """The results as markdown lines: a heading, what the rows are sorted by, the table, and
    the sweep's total compute. Nothing when the sweep has no training job."""
    rows = result_rows(state)
    if not rows:
        return []
    swept = swept_parameters(rows)
    units = sorted({row.unit for row in rows if row.trained})
    tasks = sorted({task for row in rows for task in row.scores})
    metric_of = {task: next(row.scores[task][1] for row in rows if task in row.scores) for task in tasks}
    measures = [
        (title, key) for title, key in _MEASURES if any(row.value(key) is not None for row in rows)
    ]
    causes, changes = any(row.cause for row in rows), any(row.changed for row in rows)
    header = [
        "Run", *swept, "Status", *(["Cause"] if causes else []), *(title for title, _ in measures), "Wall time", "Attempts",
        "/".join(units) + "-hours", *(["Changed by restarts"] if changes else []),
        *(f"{task} ({metric_of[task]})" for task in tasks),
    ]
    larger_first = sort_by in LARGER_IS_BETTER or sort_by in tasks
    lines = [
        "### Results", "",
        f"Sorted by {sort_by}, best first{' (largest)' if larger_first else ' (smallest)'}.", "",
        "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
    ]
    for row in sorted_rows(rows, sort_by):
        cells = [
            row.run, *(_cell(row.parameters.get(name)) for name in swept), row.status, *([row.cause or "-"] if causes else []),
            *(_cell(row.value(key)) for _, key in measures), format_elapsed(row.wall_time_s) if row.wall_time_s is not None else "-",
            _cell(row.attempts), _cell(row.hours, 3) + (f" {row.unit}" if len(units) > 1 else ""),
            *([row.changed or "-"] if changes else []),
            *(_score_cell(row.scores[task]) if task in row.scores else "-" for task in tasks),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    totals = [f"{sum(row.hours or 0.0 for row in rows if row.unit == unit):.3g} {unit}-hours" for unit in units]
    lines += ["", f"Total compute: {', '.join(totals)}."]
    return lines


def _score_cell(score: tuple[int | None, str, float]) -> str:
    epoch, _, value = score
    return f"{_cell(value)} (epoch {epoch})" if epoch is not None else f"{_cell(value)} (as given)"
