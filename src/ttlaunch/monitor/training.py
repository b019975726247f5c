"""Each training job's progress, read from its own output as it is written.

Every poll reads only the bytes written since the last one (whole lines), from where the
payload logs its metrics (ttlaunch.monitor.training_log): torchtune's metric log, else its
stdout, else (a logger that writes elsewhere: WandB, TensorBoard) its progress bar on stderr;
the bar also gives the steps of an epoch, and its saved config the epochs; a command's
(payload.metrics) or an app's (hydra.launcher.metrics) declared regex or JSONL file. What it
finds goes into the job's record (`training` in jobs.json). A job that ended is read once
more, to its end.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Callable, Iterator

from ttlaunch.inputs.torchtune_configs import SAVED_CONFIG_NAME, epochs_and_step_cap, metric_logger
from ttlaunch.monitor.job_output import new_lines
from ttlaunch.monitor.poll_failures import Containment
from ttlaunch.monitor.training_log import (
    MetricPoint,
    curve,
    global_step,
    jsonl_point,
    pattern_point,
    progress_point,
    steps_per_epoch,
    stitched,
    torchtune_point,
)
from ttlaunch.records.jobs_file import JobKind, JobRecord, SweepState, TrainingProgress
from ttlaunch.records.ledger import Ledger
from ttlaunch.scheduler.states import JobState

# torchtune's DiskLogger files, in its default log_dir (${output_dir}/logs).
METRIC_LOG_GLOB = "logs/log_*.txt"
# torchtune's loggers that write its metric lines where ttlaunch reads them.
LINE_LOGGERS = ("DiskLogger", "StdoutLogger")

Parser = Callable[[str], "MetricPoint | None"]


def metric_sources(record: JobRecord, state: SweepState) -> list[tuple[Path, Parser]]:
    """The files a job's metrics are in, oldest first, each with how to read its lines."""
    output_dir = Path(record.output_dir) if record.output_dir else None
    if state.payload_kind is not None and state.payload_kind.logs_torchtune_metrics:
        logs = sorted(output_dir.glob(METRIC_LOG_GLOB)) if output_dir is not None else []
        if logs:
            return [(path, torchtune_point) for path in logs]
        logger = metric_logger(output_dir / SAVED_CONFIG_NAME) if output_dir is not None else None
        if logger is not None and not logger.endswith(LINE_LOGGERS) and record.stderr:
            return [(Path(record.stderr), progress_point)]
        return [(Path(record.stdout), torchtune_point)] if record.stdout else []
    sources: list[tuple[Path, Parser]] = []
    if state.metrics_pattern is not None:
        pattern = re.compile(state.metrics_pattern)
        # Both streams: an app's logging goes to either (Hydra's to stdout, Python's default to stderr).
        for stream in dict.fromkeys(path for path in (record.stdout, record.stderr) if path):
            sources.append((Path(stream), lambda line: pattern_point(line, pattern)))
    # A command's output dir, or an app job's own dir (Hydra's output dir for the job).
    base_dir = output_dir or (Path(record.job_dir) if record.job_dir else None)
    if state.metrics_jsonl is not None and base_dir is not None:
        sources.append((base_dir / state.metrics_jsonl, jsonl_point))
    return sources


def points_of(path: Path, parse: Parser) -> Iterator[MetricPoint]:
    """Every metric point of a whole file (for figures, read once at the end)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    for line in text.splitlines():
        point = parse(line)
        if point is not None:
            yield point


class TrainingWatch:
    """The training progress of a sweep's jobs, brought up to date at each poll."""

    def __init__(self, ledger: Ledger, clock: Callable[[], float] = time.time) -> None:
        self._ledger = ledger
        self._clock = clock
        self._done: set[str] = set()  # "<job>@<job id>": read to its end after it ended

    def read(self, faults: Containment) -> bool:
        """Read what each training job wrote since the last poll; whether a record changed.
        One job's reading that fails costs only that job's, until the next poll."""
        changed: list[bool] = []
        for name, record in self._ledger.state.jobs.items():
            marker = f"{name}@{record.job_id}"
            if record.kind is not JobKind.TRAINING or not record.job_id or marker in self._done:
                continue
            if record.status in (JobState.PENDING, JobState.REQUEUED):
                continue
            if faults.run(name, "training", lambda: changed.append(self.update(record))) and record.status.terminal:
                self._done.add(marker)
        return any(changed)

    def update(self, record: JobRecord) -> bool:
        progress = record.training or TrainingProgress()
        sources = metric_sources(record, self._ledger.state)
        # The progress bar's file read once per poll: for its losses too when they are there.
        bar_has_losses = any(parse is progress_point for _, parse in sources)
        total, per_epoch = self._epoch_steps(record, progress, read_bar=not bar_has_losses)
        points: list[MetricPoint] = []
        for path, parse in sources:
            lines, offset = new_lines(path, progress.read.get(str(path), 0))
            if parse is progress_point:
                progress.steps_per_epoch = steps_per_epoch("\n".join(lines)) or progress.steps_per_epoch
            for point in filter(None, map(parse, lines)):
                step, progress.numbering[str(path)] = global_step(
                    point.step, progress.numbering.get(str(path)), points[-1].step if points else progress.steps_done, per_epoch,
                )
                points.append(MetricPoint(step, point.values))
            progress.read[str(path)] = offset
        if not points and total == progress.steps_total:
            return False
        progress.steps_total = total
        self._add(progress, points, record.attempt)
        record.training = progress
        return True

    def _add(self, progress: TrainingProgress, points: list[MetricPoint], attempt: int) -> None:
        """The points one read found. The pace is measured from the newest step of the first
        read that found this attempt's steps (or steps trained again) to the newest now."""
        restart = not progress.since or progress.since[2] != attempt
        for point in points:
            restart |= point.step < progress.steps_done
            progress.steps_done = point.step
            values = point.values
            if "loss" in values:
                progress.loss = values["loss"]
                progress.min_loss = values["loss"] if progress.min_loss is None else min(progress.min_loss, values["loss"])
            progress.lr = values.get("lr", progress.lr)
            progress.tokens_per_s = values.get("tokens_per_s", progress.tokens_per_s)
            if "peak_memory_gb" in values:
                progress.peak_memory_gb = max(progress.peak_memory_gb or 0.0, values["peak_memory_gb"])
            if "steps_total" in values:
                progress.steps_total = int(values["steps_total"])
        if not points:
            return
        now = self._clock()
        if restart:
            progress.since = [now, progress.steps_done, attempt]
        elif progress.steps_done > progress.since[1]:
            progress.step_time_s = (now - progress.since[0]) / (progress.steps_done - progress.since[1])

    def _epoch_steps(self, record: JobRecord, progress: TrainingProgress, read_bar: bool) -> tuple[int | None, int | None]:
        """The run's total steps and the steps of an epoch. torchtune: the epochs of its saved
        config times the steps of an epoch (its progress bar's, else the config's
        max_steps_per_epoch), the config read once per poll. Other payloads say the total
        themselves and have no epochs here."""
        kind = self._ledger.state.payload_kind
        if kind is None or not kind.saves_epochs or not record.output_dir:
            return progress.steps_total, None
        if progress.steps_per_epoch is not None and progress.steps_total is not None:
            return progress.steps_total, progress.steps_per_epoch  # both known: nothing more to read
        if record.stderr and read_bar:
            stderr = str(record.stderr)
            lines, progress.read[stderr] = new_lines(Path(stderr), progress.read.get(stderr, 0))
            progress.steps_per_epoch = steps_per_epoch("\n".join(lines)) or progress.steps_per_epoch
        epochs, cap = epochs_and_step_cap(Path(record.output_dir) / SAVED_CONFIG_NAME)
        per_epoch = progress.steps_per_epoch or cap
        return (epochs * per_epoch if epochs and per_epoch else progress.steps_total), per_epoch


def total_per_epoch(record: JobRecord) -> int | None:
    """The steps of an epoch, as far as a torchtune run's saved config says (max_steps_per_epoch)."""
    if not record.output_dir:
        return None
    return epochs_and_step_cap(Path(record.output_dir) / SAVED_CONFIG_NAME)[1]


def loss_curve(record: JobRecord, state: SweepState) -> list[tuple[int, float]]:
    """A training job's loss by step across its attempts, from all it logged (read whole)."""
    sources = [list(points_of(path, parse)) for path, parse in metric_sources(record, state)]
    per_epoch = (record.training.steps_per_epoch if record.training else None) or total_per_epoch(record)
    return curve(stitched(sources, per_epoch))


def training_curves(state: SweepState) -> dict[str, list[tuple[int, float]]]:
    """Each training job's loss by step (read once, for pictures)."""
    return {
        name: loss_curve(record, state)
        for name, record in state.jobs.items() if record.kind is JobKind.TRAINING and record.job_id
    }
