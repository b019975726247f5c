"""The sweep's pictures, written beside summary.md (matplotlib, the `figures` extra):

- loss_curves.png: the loss of every run by step, one line per run;
- timeline.png: one bar per job by wall-clock time: queued, running, its requeues, its end;
- loss_by_<parameter>.png: when a numeric parameter is swept, the final loss against it
  (one series per value of a second swept parameter);
- scores_<task>.png: each run's score on an evaluation task, best first, beside the models
  as the summary gives them (a control's base model): which run won, and by how much.

Each `*_figure` function builds a matplotlib Figure from plain data, for tests to inspect;
`write_pictures` saves them. matplotlib's object API, no pyplot: no GUI backend, no global state.
"""

from __future__ import annotations

import datetime as dt
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ttlaunch.base.times import parse_timestamp
from ttlaunch.inputs.failure_causes import FailureCause
from ttlaunch.records.jobs_file import JobRecord, SweepState
from ttlaunch.records.results import ResultRow, result_rows, swept_parameters
from ttlaunch.scheduler.states import JobState

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Curve = Sequence[tuple[int, float]]
# A sweep of hundreds of jobs gets a timeline of readable size, its bars unnamed.
MAX_TIMELINE_HEIGHT_IN = 30.0
MAX_NAMED_BARS = 80
# More runs than this: lines without a legend (it would hide the plot).
MAX_LEGEND_ENTRIES = 30
# A bar that ran is coloured by how it ended: completed, still running, or its failure's cause.
_COMPLETED_COLOUR, _PRUNED_COLOUR, _RUNNING_COLOUR = "tab:green", "tab:purple", "tab:blue"
_CAUSE_COLOURS = {
    FailureCause.gpu_oom: "tab:purple", FailureCause.host_oom: "orchid", FailureCause.node_failure: "black",
    FailureCause.communication: "tab:cyan", FailureCause.preempted: "gold", FailureCause.time_limit: "tab:orange",
    FailureCause.cancelled: "darkgrey", FailureCause.numerical: "tab:pink", FailureCause.code: "tab:red",
    FailureCause.unknown: "tab:brown",
}


def import_figure_modules() -> None:
    """Import matplotlib's figure and PNG modules now, if it is installed. The monitor does
    this while it would wait for the jobs anyway: the import was most of a short sweep's wait
    from its last job's end to the command's exit (0.7 of 0.8 s)."""
    try:
        for module in ("matplotlib.figure", "matplotlib.backends.backend_agg"):  # the figure, savefig's PNG writer
            importlib.import_module(module)
    except ImportError:  # no figures extra: the summary says how to get them
        pass


def loss_curves_figure(curves: Mapping[str, Curve]) -> Figure:
    # matplotlib (an extra) loads only where pictures are drawn.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5))
    axes = figure.add_subplot()
    for run, points in curves.items():
        if points:
            axes.plot([step for step, _ in points], [loss for _, loss in points], label=run)
    axes.set(xlabel="step", ylabel="loss", title="Training loss")
    if 0 < len(axes.get_lines()) <= MAX_LEGEND_ENTRIES:
        axes.legend(fontsize="small")
    return figure


def timeline_figure(state: SweepState, now: dt.datetime | None = None) -> Figure:
    """One bar per job: grey while queued, coloured by its end state while it ran, a black
    tick at each requeue. Time runs from the first submission, in seconds, minutes or hours."""
    # matplotlib (an extra) loads only where pictures are drawn.
    from matplotlib.figure import Figure

    moment = now or dt.datetime.now()
    submitted_at = {name: parse_timestamp(record.submitted) for name, record in state.jobs.items()}
    jobs = [(name, record) for name, record in state.jobs.items() if submitted_at[name] is not None]
    figure = Figure(figsize=(9, min(MAX_TIMELINE_HEIGHT_IN, 1.2 + 0.35 * max(1, len(jobs)))))
    axes = figure.add_subplot()
    origin = min((when for when in submitted_at.values() if when is not None), default=moment)
    ends = [parse_timestamp(record.completed) or moment for _, record in jobs]
    span_s = max(((end - origin).total_seconds() for end in ends), default=0.0)
    scale, unit = (1, "seconds") if span_s < 600 else (60, "minutes") if span_s < 36000 else (3600, "hours")

    def at(when: dt.datetime) -> float:
        return (when - origin).total_seconds() / scale

    # The bars of one colour in one call each: a call per bar was most of the end of a sweep of 50 jobs.
    bars: dict[tuple[str, str], list[tuple[int, float, float]]] = {}  # (label, colour) -> (row, left, width)
    requeued: list[tuple[float, int]] = []
    for row, (_, record) in enumerate(reversed(jobs)):
        submitted, started = parse_timestamp(record.submitted), parse_timestamp(record.started)
        ended = parse_timestamp(record.completed) or moment
        assert submitted is not None
        bars.setdefault(("queued", "lightgrey"), []).append((row, at(submitted), at(started or ended) - at(submitted)))
        if started is not None:
            label, colour = _end_of(record)
            bars.setdefault((label, colour), []).append((row, at(started), at(ended) - at(started)))
        for requeue in record.requeues:
            when = parse_timestamp(str(requeue.get("at")))
            if when is not None:
                requeued.append((at(when), row))
    for (label, colour), rows in bars.items():
        axes.barh([row for row, _, _ in rows], [width for _, _, width in rows], left=[left for _, left, _ in rows],
                  color=colour, label=label)
    if requeued:
        axes.plot([x for x, _ in requeued], [row for _, row in requeued], linestyle="none", marker="|", markersize=14,
                  color="black", label="requeued")
    if len(jobs) <= MAX_NAMED_BARS:
        axes.set_yticks(range(len(jobs)), [name for name, _ in reversed(jobs)], fontsize="small")
    else:  # too many to read: the bars alone, the first submitted on top
        axes.set_yticks([])
        axes.set_ylabel(f"{len(jobs)} jobs")
    axes.set(xlabel=f"{unit} since the first submission", title="Sweep timeline")
    handles, labels = axes.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    if unique:
        axes.legend(unique.values(), unique.keys(), fontsize="small")
    return figure


def _end_of(record: JobRecord) -> tuple[str, str]:
    """The legend's word and the colour of a job's bar."""
    if record.status is JobState.COMPLETED:
        return "COMPLETED", _COMPLETED_COLOUR
    if record.status is JobState.PRUNED:
        return "PRUNED", _PRUNED_COLOUR
    if record.cause is not None:
        return record.cause.value, _CAUSE_COLOURS[record.cause]
    return record.status.value, _RUNNING_COLOUR


def numeric_sweep(rows: Sequence[ResultRow]) -> tuple[str, str | None] | None:
    """The swept parameter to put on the x axis (the first numeric one), and the one to draw
    a series per value of (the next swept one); None when no numeric parameter is swept."""
    swept = swept_parameters(list(rows))
    trained = [row for row in rows if row.trained]  # a control's row has no parameters
    numeric = [name for name in swept if all(_is_number(row.parameters.get(name)) for row in trained)]
    if not numeric:
        return None
    others = [name for name in swept if name != numeric[0]]
    return numeric[0], others[0] if others else None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def loss_by_parameter_figure(rows: Sequence[ResultRow], parameter: str, series: str | None) -> Figure:
    # matplotlib (an extra) loads only where pictures are drawn.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 5))
    axes = figure.add_subplot()
    groups: dict[Any, list[ResultRow]] = {}  # a parameter's values, of whatever type the summary gave
    for row in rows:
        if row.final_loss is not None and row.trained:
            groups.setdefault(row.parameters.get(series) if series else None, []).append(row)
    for value, members in groups.items():
        members.sort(key=lambda row: row.parameters[parameter])
        label = f"{series}={value}" if series else "final loss"
        losses = [row.final_loss for row in members if row.final_loss is not None]
        axes.plot([row.parameters[parameter] for row in members], losses, marker="o", label=label)
    axes.set(xlabel=parameter, ylabel="final loss", title=f"Final loss by {parameter}")
    if all(row.parameters[parameter] > 0 for members in groups.values() for row in members) and _spans_decades(groups, parameter):
        axes.set_xscale("log")
    if axes.get_lines():
        axes.legend(fontsize="small")
    return figure


# Any: a parameter's values, of whatever type the summary gave.
def _spans_decades(groups: Mapping[Any, list[ResultRow]], parameter: str) -> bool:
    values = [row.parameters[parameter] for members in groups.values() for row in members]
    return bool(values) and max(values) / min(values) >= 100


def scores_figure(rows: Sequence[ResultRow], task: str) -> Figure:
    """One bar per run evaluated on `task`, best first; a model as the summary gives it (a
    control's base model) in grey, the fine-tuned runs labelled with their epoch."""
    # matplotlib (an extra) loads only where pictures are drawn.
    from matplotlib.figure import Figure

    scored = sorted((row for row in rows if task in row.scores), key=lambda row: -row.scores[task][2])
    metric = scored[0].scores[task][1] if scored else "score"
    figure = Figure(figsize=(7, max(2.5, 0.45 * len(scored) + 1.2)))
    axes = figure.add_subplot()
    labels = [row.run if row.scores[task][0] is None else f"{row.run} (epoch {row.scores[task][0]})" for row in scored]
    values = [row.scores[task][2] for row in scored]
    colours = ["tab:gray" if row.scores[task][0] is None else "tab:blue" for row in scored]
    bars = axes.barh(labels, values, color=colours)
    axes.bar_label(bars, labels=[f"{value:.3g}" for value in values], padding=3, fontsize="small")
    axes.invert_yaxis()  # the best on top
    axes.set(xlabel=metric, title=f"{task}: {metric} by run (grey: as given)")
    axes.set_xlim(0, max([*values, 1.0]) * 1.15)
    return figure


def write_pictures(state: SweepState, curves: Mapping[str, Curve], directory: Path) -> list[Path]:
    """The sweep's pictures, saved in `directory`; the paths written."""
    written = []
    pictures: list[tuple[str, Figure]] = []
    if any(curves.values()):
        pictures.append(("loss_curves.png", loss_curves_figure(curves)))
    pictures.append(("timeline.png", timeline_figure(state)))
    rows = result_rows(state)
    swept = numeric_sweep(rows)
    if swept is not None and any(row.final_loss is not None for row in rows):
        pictures.append((f"loss_by_{swept[0]}.png", loss_by_parameter_figure(rows, *swept)))
    tasks = list(dict.fromkeys(task for row in rows for task in row.scores))
    pictures += [(f"scores_{task}.png", scores_figure(rows, task)) for task in tasks]
    for name, figure in pictures:
        path = directory / name
        temporary = directory / f".{name}.tmp.png"
        figure.savefig(temporary, dpi=100, bbox_inches="tight")
        temporary.replace(path)  # a reader sees the old picture or the new one
        written.append(path)
    return written
