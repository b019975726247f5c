"""Offline W&B runs reach W&B without a person: where the monitor runs with network access (the
login node; a detached monitor only with tracker.sync_from_monitor=true), each run's offline
W&B dirs (ttlaunch.records.tracker_file) are handed to `wandb sync` when they changed, at
most every `tracker_sync_every_s` and once more at the end; `ttlaunch sync <sweep dir>` does
the same on demand. Before, each evaluation's scores not yet there are added to its run's W&B
run (ttlaunch.monitor.wandb_scores), when torchtune's logger logged that run.

A round runs in a thread of its own, so a slow upload never holds up a poll; what it learned
(each run's W&B page) is applied to the records in the monitor's thread. A failing sync is
said once (log and event log) and never stops the monitoring: the next round tries again.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ttlaunch.base.files import write_atomically
from ttlaunch.inputs.evaluation_plan import evaluated
from ttlaunch.records.jobs_file import JobKind, JobRecord
from ttlaunch.records.ledger import Ledger
from ttlaunch.records.tracker_file import read_tracker, wandb_run_dirs
from ttlaunch.scheduler.states import JobState

log = logging.getLogger(__name__)

# How long one `wandb sync` of one dir may take before it counts as failed.
SYNC_TIMEOUT_S = 600.0
# In an evaluation's job dir once its scores are in its run's W&B run (what was added).
SCORES_LOGGED = "tracker_scores.json"
# What `wandb sync` prints of the run it synced: "Syncing: https://wandb.ai/<entity>/<project>/runs/<id> ... done."
_RUN_PAGE = re.compile(r"https?://\S+/runs/[\w-]+")


@dataclass(frozen=True)
class SyncResult:
    """What `wandb sync` of one dir did: whether it succeeded, the run's page it named, and
    what it said when it failed."""

    ok: bool
    url: str | None = None
    problem: str = ""


def wandb_sync(run_dir: Path) -> SyncResult:
    """Hand one W&B run dir to `wandb sync` (a dir synced before goes again: it grew)."""
    program = shutil.which("wandb")
    if program is None:
        return SyncResult(False, problem="no `wandb` command on PATH (pip install wandb)")
    try:
        done = subprocess.run(
            [program, "sync", "--include-synced", str(run_dir)], capture_output=True, text=True, timeout=SYNC_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return SyncResult(False, problem=str(err))
    said = f"{done.stdout}\n{done.stderr}"
    if done.returncode != 0:
        return SyncResult(False, problem=" ".join(said.split())[-500:] or f"exit code {done.returncode}")
    found = _RUN_PAGE.search(said)
    return SyncResult(True, url=found.group() if found else None)


@dataclass(frozen=True)
class ScoresOrder:
    """One evaluation's scores for its run's W&B run: the evaluation job, where it is marked
    done, and what ttlaunch.monitor.wandb_scores is given (JSON)."""

    job: str
    evaluation_dir: Path
    order: dict[str, object]


def scores_to_log(jobs: Mapping[str, JobRecord]) -> list[ScoresOrder]:
    """The completed evaluations of the sweep's own checkpoints whose scores are not in their
    run's W&B run yet, that run being one torchtune's logger logged (its project known)."""
    orders = []
    for name, record in jobs.items():
        target = evaluated(name)
        if record.kind is not JobKind.EVALUATION or record.status is not JobState.COMPLETED or target is None:
            continue
        training_job, epoch = target
        training = jobs.get(training_job)
        if epoch is None or training is None or not training.job_dir or not record.job_dir or not record.scores:
            continue
        if (Path(record.job_dir) / SCORES_LOGGED).exists():
            continue
        run = read_tracker(Path(training.job_dir))
        if run is None or run.wandb_project is None:
            continue
        values = {
            f"eval/{task}/epoch_{epoch}/{metric}": value
            for task, task_scores in record.scores.items() for metric, value in task_scores.get("metrics", {}).items()
            if isinstance(value, (int, float))
        }
        orders.append(ScoresOrder(name, Path(record.job_dir), {
            "dir": training.job_dir, "project": run.wandb_project, "entity": run.wandb_entity, "id": run.id, "values": values,
        }))
    return orders


def log_scores(order: ScoresOrder) -> SyncResult:
    """Add one evaluation's scores to its run's W&B run, offline; marked done once added."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ttlaunch.monitor.wandb_scores", json.dumps(order.order)],
            capture_output=True, text=True, timeout=SYNC_TIMEOUT_S, env={**os.environ, "WANDB_SILENT": "true"},
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return SyncResult(False, problem=str(err))
    if done.returncode != 0:
        return SyncResult(False, problem=" ".join(done.stderr.split())[-500:] or f"exit code {done.returncode}")
    write_atomically(order.evaluation_dir / SCORES_LOGGED, json.dumps(order.order["values"], indent=1) + "\n")
    return SyncResult(True)


@dataclass
class SyncRound:
    """One round's outcome: the page learned per job, the dirs synced (with what they were
    when synced), the failures."""

    urls: dict[str, str] = field(default_factory=dict)
    synced: dict[Path, tuple[int, int]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # job -> what failed
    offline: int = 0  # the offline dirs there were


def training_dirs(jobs: Mapping[str, JobRecord]) -> dict[str, Path]:
    """Training job name -> its job dir (where its point's tracker run is kept)."""
    return {name: Path(record.job_dir) for name, record in jobs.items() if record.kind is JobKind.TRAINING and record.job_dir}


def offline_dirs(training: Mapping[str, Path]) -> dict[str, list[Path]]:
    """Training job name -> its point's offline W&B run dirs, oldest first."""
    found: dict[str, list[Path]] = {}
    for name, job_dir in training.items():
        run = read_tracker(job_dir)
        if run is not None:
            dirs = [path for path in wandb_run_dirs(job_dir, run) if path.name.startswith("offline-run-")]
            if dirs:
                found[name] = dirs
    return found


def sync_round(
    training: Mapping[str, Path], synced: Mapping[Path, tuple[int, int]], scores: Sequence[ScoresOrder] = (),
    sync: Callable[[Path], SyncResult] = wandb_sync, add_scores: Callable[[ScoresOrder], SyncResult] = log_scores,
) -> SyncRound:
    """Add the evaluations' `scores`, then sync each offline dir of the `training` jobs' runs
    that changed since it was last synced (`synced`), in order per run."""
    outcome = SyncRound()
    for order in scores:
        added = add_scores(order)
        if not added.ok:
            outcome.failures[order.job] = f"its scores into its run's W&B run: {added.problem}"
    dirs = offline_dirs(training)
    outcome.offline = sum(len(run_dirs) for run_dirs in dirs.values())
    for name, run_dirs in dirs.items():
        for run_dir in run_dirs:
            now = _signature(run_dir)
            if now is None or synced.get(run_dir) == now:
                continue
            result = sync(run_dir)
            if not result.ok:
                outcome.failures[name] = f"{run_dir}: {result.problem}"
                break  # its later dirs after it: W&B takes a run's attempts in order
            outcome.synced[run_dir] = now
            if result.url:
                outcome.urls[name] = result.url
    return outcome


def _signature(run_dir: Path) -> tuple[int, int] | None:
    """What says a run dir changed: its newest file's time and the size of its files (a
    .wandb log, files/, logs/), from one listing."""
    newest, size = 0, 0
    try:
        for path in run_dir.rglob("*"):
            if path.is_file():
                stat = path.stat()
                newest, size = max(newest, stat.st_mtime_ns), size + stat.st_size
    except OSError:
        return None
    return (newest, size)


class TrackerSync:
    """The monitor's syncs (see the module's docstring)."""

    def __init__(
        self, ledger: Ledger, every_s: float, clock: Callable[[], float], sync: Callable[[Path], SyncResult] = wandb_sync,
    ) -> None:
        self.ledger = ledger
        self.every_s = every_s
        self._clock, self._sync = clock, sync
        self._synced: dict[Path, tuple[int, int]] = {}
        self._last = float("-inf")
        self._running: tuple[threading.Thread, list[SyncRound | BaseException]] | None = None  # the thread, its outcome
        self._failure_said = False

    def tick(self) -> bool:
        """After a poll: take in a finished round, start one when due; whether records changed."""
        changed = self._collect(wait=False)
        if self._running is None and self._clock() - self._last >= self.every_s:
            self._last = self._clock()
            jobs = self.ledger.state.jobs
            training, synced, scores = training_dirs(jobs), dict(self._synced), scores_to_log(jobs)
            outcome: list[SyncRound | BaseException] = []

            def work() -> None:
                try:
                    outcome.append(sync_round(training, synced, scores, self._sync))
                except BaseException as err:  # the monitor's thread reports it (ttlaunch.monitor.poll_failures)
                    outcome.append(err)

            # A daemon: an interrupted launch does not wait for an upload at exit.
            thread = threading.Thread(target=work, name="ttlaunch-sync", daemon=True)
            thread.start()
            self._running = (thread, outcome)
        return changed

    def finish(self) -> bool:
        """At the sweep's end: the round under way, then one more of what changed since."""
        changed = self._collect(wait=True)
        jobs = self.ledger.state.jobs
        return self._apply(sync_round(training_dirs(jobs), dict(self._synced), scores_to_log(jobs), self._sync)) or changed

    def _collect(self, wait: bool) -> bool:
        if self._running is None:
            return False
        thread, outcome = self._running
        if wait:
            thread.join()
        elif thread.is_alive():
            return False
        self._running = None
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return self._apply(outcome[0])

    def _apply(self, outcome: SyncRound) -> bool:
        self._synced.update(outcome.synced)
        if outcome.synced:
            log.info("wandb sync: %d W&B run dirs synced", len(outcome.synced))
        if outcome.failures and not self._failure_said:
            self._failure_said = True
            first = next(iter(outcome.failures.values()))
            self.ledger.events.write(
                "TRACKER_SYNC", "wandb sync failed", ("Error", first),
                ("Next", "monitoring goes on; later rounds try again (said once); `ttlaunch sync <sweep dir>` syncs on demand"),
            )
            log.warning("wandb sync failed (said once; later rounds try again): %s", first)
        changed = False
        for name, url in outcome.urls.items():
            record = self.ledger.state.jobs.get(name)
            if record is not None and record.tracker_url != url:
                record.tracker_url, changed = url, True
        return changed
