"""summary.md's early stopping section (pure): each point's measure and decision at each rung,
and what stopping the points behind saved, beside what the sweep used.

What a pruned run would have cost is its own remaining steps at its own observed pace
(TrainingProgress.remaining_s: the steps of its remaining epochs times its time per step),
times the GPUs it held (CPUs on presets without GPUs).
"""

from __future__ import annotations

from ttlaunch.records.jobs_file import JobKind, SweepState
from ttlaunch.records.results import allocation, hours_of, seconds_run
from ttlaunch.scheduler.states import JobState


def hours_saved(state: SweepState) -> tuple[float, float, str]:
    """(hours the pruned runs would still have trained, hours every job of the sweep used,
    GPU or CPU)."""
    records = list(state.jobs.values())
    saved = sum(
        hours_of(record, record.training.remaining_s() or 0.0)
        for record in records if record.status is JobState.PRUNED and record.kind is JobKind.TRAINING and record.training
    )
    used = sum(hours_of(record, seconds_run(record) or 0.0) for record in records)
    unit = "GPU" if any(allocation(record)[1] == "GPU" for record in records) else "CPU"
    return saved, used, unit


def pruning_section(state: SweepState) -> list[str]:
    if not state.rungs:
        return []
    rows = [
        f"| {decision.point} | {decision.rung} | {decision.measure:.4g} | {decision.rank} of {decision.reached} | "
        f"{'kept' if decision.kept else 'pruned'} |"
        for decision in sorted(state.rungs, key=lambda decision: decision.rung)  # each rung's as they were made
    ]
    saved, used, unit = hours_saved(state)
    pruned = sum(record.status is JobState.PRUNED for record in state.jobs.values())
    lines = ["", "### Early stopping", ""]
    if state.pruning:
        lines += [f"{state.pruning}.", ""]
    lines += ["| Point | Rung | Measure | Rank | Decision |", "|---|---|---|---|---|", *rows, ""]
    lines.append(
        f"Stopping {pruned} runs early saved about {saved:.3g} {unit}-hours (each one's remaining steps at its own pace, "
        f"times its {unit}s); the sweep used {used:.3g} {unit}-hours."
    )
    return lines
