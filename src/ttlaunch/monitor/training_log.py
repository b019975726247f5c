"""What a payload says of its training, read from its output (pure: text in, points out).

torchtune writes one line per logged step, to its metric log (DiskLogger,
`<output_dir>/logs/log_<time>.txt`) or to stdout (StdoutLogger), in the same form:
`Step 12 | loss:1.93 lr:0.0003 tokens_per_second_per_gpu:812.5`. Its progress bar on
stderr (`2|6|Loss: 6.56: 100%|####| 3/3 [...]`) says how many steps an epoch has, and is
where the losses are when its metric logger writes elsewhere (WandB, TensorBoard).
Another payload can declare a regex with named groups (`step` and the metrics) for its stdout,
or a JSONL file of objects with `step` and the metrics.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Mapping

_STEP_LINE = re.compile(r"^Step (\d+) \| (.*)$")
_PAIR = re.compile(r"([A-Za-z_][\w/.-]*):(\S+)")
# tqdm's bar as torchtune draws it: epoch|step|Loss: value: percent|bar| done/total [times]
_PROGRESS_BAR = re.compile(r"\d+\|\d+\|Loss: [^:]*:\s*\d+%\|[^|]*\|\s*\d+/(\d+) \[")
# The bar's description: epoch|global step|Loss: value.
_BAR_LOSS = re.compile(r"\d+\|(\d+)\|Loss: ([^:\s]+)")
# torchtune's metric names, and the names ttlaunch keeps them under.
METRIC_NAMES = {
    "loss": "loss",
    "lr": "lr",
    "tokens_per_second_per_gpu": "tokens_per_s",
    "tokens_per_s": "tokens_per_s",
    "peak_memory_alloc": "peak_memory_gb",
    "peak_memory_gb": "peak_memory_gb",
    "steps_total": "steps_total",
}


@dataclass(frozen=True)
class MetricPoint:
    """One logged step: its number and the metrics logged with it (ttlaunch's names)."""

    step: int
    values: Mapping[str, float]


def _number(text: object) -> float | None:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _point(step: object, pairs: Mapping[str, object]) -> MetricPoint | None:
    if isinstance(step, bool):
        return None
    number = _number(step)
    if number is None or number < 0 or not number.is_integer():
        return None
    values = {METRIC_NAMES[name]: value for name, raw in pairs.items() if name in METRIC_NAMES
              for value in [_number(raw)] if value is not None}
    return MetricPoint(int(number), values) if values else None


def torchtune_point(line: str) -> MetricPoint | None:
    """A torchtune metric line (DiskLogger's or StdoutLogger's); None for any other line."""
    found = _STEP_LINE.match(line.strip())
    if found is None:
        return None
    return _point(found.group(1), dict(_PAIR.findall(found.group(2))))


def progress_point(line: str) -> MetricPoint | None:
    """The step and loss one redraw of torchtune's progress bar shows; None for any other line."""
    found = _BAR_LOSS.search(line)
    return _point(found.group(1), {"loss": found.group(2)}) if found else None


def pattern_point(line: str, pattern: re.Pattern[str]) -> MetricPoint | None:
    """A line matched by a payload's own regex: its `step` group and its metric groups."""
    found = pattern.search(line)
    if found is None:
        return None
    groups = {name: value for name, value in found.groupdict().items() if value is not None}
    return _point(groups.pop("step", None), groups)


def jsonl_point(line: str) -> MetricPoint | None:
    """A line of a payload's JSONL metrics file: an object with `step` and metrics."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return _point(data.get("step"), {key: value for key, value in data.items() if key != "step"})


def steps_per_epoch(stderr_text: str) -> int | None:
    """The step count of an epoch, from the last progress bar torchtune drew; None without one."""
    totals = _PROGRESS_BAR.findall(stderr_text.replace("\r", "\n"))
    return int(totals[-1]) if totals else None


def global_step(
    local: int, source: list[int] | None, last_global: int, steps_per_epoch: int | None
) -> tuple[int, list[int]]:
    """The step across all attempts of a step one attempt logged as `local`, and the state of
    its source (a metric log, a stdout) after it: [the step its numbering starts from, `local`].

    torchtune numbers the steps of a resumed attempt from 1 again, although it resumes after
    the newest saved epoch: a numbering that starts again (a new source at or below the steps
    seen so far, or a step at or below the source's last) is placed after the last whole
    epoch seen. Numbers above an epoch's steps already count across attempts. Without the
    steps of an epoch, a new numbering replaces the steps it repeats.
    """
    base, last_local = source if source is not None else (None, None)
    again = (local <= last_local) if last_local is not None else (last_global > 0 and local <= last_global)
    if again or base is None:
        base = 0
        if again and steps_per_epoch and local <= steps_per_epoch:
            base = (last_global // steps_per_epoch) * steps_per_epoch
    return base + local, [base, local]


def stitched(sources: list[list[MetricPoint]], steps_per_epoch: int | None) -> list[MetricPoint]:
    """The points of every source, oldest source first, with their steps across attempts."""
    points: list[MetricPoint] = []
    last_global = 0
    for source_points in sources:
        state: list[int] | None = None
        for point in source_points:
            step, state = global_step(point.step, state, last_global, steps_per_epoch)
            points.append(MetricPoint(step, point.values))
            last_global = step
    return points


def curve(points: list[MetricPoint], metric: str = "loss") -> list[tuple[int, float]]:
    """(step, value) of one metric, one per step, ascending. A step logged again (an
    attempt that resumed from an earlier epoch trains its steps again) keeps its latest value."""
    latest: dict[int, float] = {}
    for point in points:
        if metric in point.values:
            latest[point.step] = point.values[metric]
    return sorted(latest.items())
