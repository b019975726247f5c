"""Early stopping of the points that are behind (`pruning=halving`, a monitor reaction):
asynchronous successive halving, as ASHA does, inside the sweep.

At each rung (epochs trained, or steps) a point's measure is its training loss since the
previous rung, or an evaluation's score of the rung's checkpoint; replicates of a point
(`+seed=1,2`) are judged by their mean once each has its measure. A point goes on when it
is among the best 1/eta of the points that reached the rung so far (those judged in the same
poll ranked together). Nothing is judged at a rung before `min_points` points reached it (the
first ones train on meanwhile, then are judged with the others), unless no other point can
still reach it: then the few there go on, or, past a rung judged with enough points (the
others stopped there), are judged as the rest. A point behind is
stopped at once (its jobs cancelled once their rung's checkpoint is saved, so it is kept) and
ends PRUNED. Each decision is kept in jobs.json (`rungs`) as it is made: a monitor that
resumes, or a later launch, never decides a (point, rung) again, nor judges a point pruned
once; `pruning=off` on a re-launch resumes the pruned points (ttlaunch.submit.selection).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ttlaunch.base.times import timestamp
from ttlaunch.inputs.evaluation_plan import EvaluationTarget, evaluated
from ttlaunch.inputs.schema import EvaluationConfig, PruningConfig, RungUnit
from ttlaunch.monitor.actions import Capabilities
from ttlaunch.monitor.evaluations import checkpoint_ready
from ttlaunch.monitor.poll_failures import SWEEP, Containment
from ttlaunch.monitor.training import loss_curve
from ttlaunch.records.jobs_file import JobKind, JobRecord, RungDecision
from ttlaunch.records.ledger import Ledger
from ttlaunch.scheduler.states import JobState

log = logging.getLogger(__name__)

# A job's name is its run's, then `__key-value` per swept command-line key
# (ttlaunch.submit.sweep_jobs): a point is the name without its replicate key's part.
_PART_SEPARATOR = "__"


def point_of(job_name: str, replicate_key: str) -> str:
    """The point a job is a replicate of: `lr1e-3__seed-2` -> `lr1e-3` (key `seed`)."""
    parts = job_name.split(_PART_SEPARATOR)
    kept = [parts[0], *(part for part in parts[1:] if part != replicate_key and not part.startswith(f"{replicate_key}-"))]
    return _PART_SEPARATOR.join(kept)


@dataclass(frozen=True)
class Arrival:
    """A point whose measure at a rung is known, to be judged."""

    point: str
    measure: float
    jobs: tuple[str, ...]


def judge(
    earlier: Sequence[RungDecision], arrivals: Sequence[Arrival], rung: int, settings: PruningConfig, at: str,
    few_ranked: bool = False,
) -> list[RungDecision]:
    """The arrivals' decisions at a rung (pure): each ranked among every point at the rung
    (`earlier` ones and the arrivals together), kept when among the best max(1, n // eta) of
    those n, or while n < min_points unless `few_ranked` (the few that can reach a rung after
    one judged with enough points). Ties go to the name first in order."""
    sign = 1.0 if settings.minimizes else -1.0
    pool = [(decision.measure, decision.point) for decision in earlier]
    pool += [(arrival.measure, arrival.point) for arrival in arrivals]
    ranks = {point: index + 1 for index, (_, point) in enumerate(sorted(pool, key=lambda item: (sign * item[0], item[1])))}
    reached = len(pool)
    best = reached if reached < settings.min_points and not few_ranked else max(1, reached // settings.eta)
    return [
        RungDecision(arrival.point, rung, arrival.measure, ranks[arrival.point], reached, ranks[arrival.point] <= best,
                     list(arrival.jobs), at)
        for arrival in arrivals
    ]


class _Waiting:
    """A job's measure at a rung is not known yet."""


WAITING = _Waiting()


class Pruning:
    """Judges each point at each rung once, and stops the points behind (a monitor reaction)."""

    name = "pruning"  # the stage named when handling a job fails

    def __init__(self, settings: PruningConfig, evaluation: EvaluationConfig, ledger: Ledger, capabilities: Capabilities) -> None:
        self.settings = settings
        self.evaluation = evaluation
        self.ledger = ledger
        self.capabilities = capabilities
        # (job, rung) -> its measure once known: its metric log is read once per rung, not at
        # every poll. (None is not kept: a job that ended before the rung may be restarted.)
        self._measures: dict[tuple[str, int], float] = {}

    def on_transition(self, job: str, record: JobRecord, previous: JobState, current: JobState) -> None:
        return None  # rungs reached, not states, are judged

    @property
    def pending(self) -> bool:
        return False  # the jobs it waits on keep the monitor going

    def after_poll(self, faults: Containment) -> None:
        decided = {(decision.point, decision.rung) for decision in self.ledger.state.rungs}
        pruned = {decision.point for decision in self.ledger.state.rungs if not decision.kept}
        points: dict[str, list[str]] = {}
        for name, record in self.ledger.state.jobs.items():
            if record.kind is JobKind.TRAINING and record.job_id:
                points.setdefault(point_of(name, self.settings.replicate_key), []).append(name)
        changed = False
        for index, rung in enumerate(self.settings.rungs):
            earlier_rungs = self.settings.rungs[:index]
            arrivals: list[Arrival] = []
            on_the_way = False  # a point not judged here yet that may still reach the rung
            for point, jobs in points.items():
                if point in pruned or (point, rung) in decided:
                    continue
                judged_before = all((point, earlier) in decided for earlier in earlier_rungs)
                standing = self._standing_read(point, jobs, rung, faults)
                if isinstance(standing, Arrival) and judged_before:
                    arrivals.append(standing)
                elif standing is not None:  # its measure to come, or its judgement at an earlier rung
                    on_the_way = True
            earlier = [decision for decision in self.ledger.state.rungs if decision.rung == rung]
            if len(earlier) + len(arrivals) < self.settings.min_points and on_the_way:
                continue  # too few to judge yet: those there train on
            # After a rung judged with enough points, the few the others' stopping leaves to reach
            # this one are ranked as many would be (that they arrived apart is chance, not merit).
            few_ranked = any(
                decision.reached >= self.settings.min_points for decision in self.ledger.state.rungs if decision.rung < rung
            )
            if arrivals:
                for decision in judge(earlier, arrivals, rung, self.settings, timestamp(), few_ranked):
                    self._carry_out(decision, faults)
                    decided.add((decision.point, rung))
                    if not decision.kept:
                        pruned.add(decision.point)
                changed = True
        if changed:
            faults.run(SWEEP, "jobs.json", self.ledger.save)

    def _standing_read(self, point: str, jobs: list[str], rung: int, faults: Containment) -> Arrival | _Waiting | None:
        """The point's standing; WAITING when its measures could not be read this poll (logged)."""
        found: list[Arrival | _Waiting | None] = []
        if faults.run(point, self.name, lambda: found.append(self._standing(point, jobs, rung))):
            return found[0]
        return WAITING

    def _standing(self, point: str, jobs: list[str], rung: int) -> Arrival | _Waiting | None:
        """Where the point stands at the rung: there, with its jobs' mean measure, once each
        of its jobs has one (or ended without); WAITING while one's is to come; None when
        none has one and none will (its jobs ended before the rung)."""
        measures: list[float] = []
        for job in jobs:
            measure = self._measure(job, rung)
            if isinstance(measure, _Waiting):
                return WAITING
            if measure is not None:
                measures.append(measure)
        return Arrival(point, sum(measures) / len(measures), tuple(jobs)) if measures else None

    def _measure(self, job: str, rung: int) -> float | None | _Waiting:
        known = self._measures.get((job, rung))
        if known is not None:
            return known
        record = self.ledger.state.jobs[job]
        measure = self._score(job, record, rung) if self.settings.metric != "loss" else self._loss(record, rung)
        if isinstance(measure, float):
            self._measures[(job, rung)] = measure
        return measure

    def _rung_step(self, record: JobRecord, rung: int) -> int | None:
        if self.settings.unit is RungUnit.steps:
            return rung
        per_epoch = record.training.steps_per_epoch if record.training is not None else None
        return rung * per_epoch if per_epoch else None

    def _rung_saved(self, job: str, record: JobRecord, rung: int) -> bool:
        """Whether the rung's checkpoint is saved whole (epochs), as the evaluation trigger
        sees an epoch's: stopping then keeps it."""
        if self.settings.unit is not RungUnit.epochs or not record.output_dir:
            return True
        target = EvaluationTarget(record.run_name or job, ("",), rung - 1, job)  # the checkpoint of no task in particular
        return checkpoint_ready(self.evaluation, target, Path(record.output_dir))

    def _loss(self, record: JobRecord, rung: int) -> float | None | _Waiting:
        """The mean training loss logged after the previous rung, up to this one."""
        step = self._rung_step(record, rung)
        done = record.training.steps_done if record.training is not None else 0
        reached = step is not None and done >= step and self._rung_saved(record.name, record, rung)
        if not reached:
            return None if record.status.terminal else WAITING
        assert step is not None  # reached
        index = self.settings.rungs.index(rung)
        previous = self._rung_step(record, self.settings.rungs[index - 1]) if index else 0
        values = [value for at, value in loss_curve(record, self.ledger.state) if (previous or 0) < at <= step]
        return sum(values) / len(values) if values else None

    def _score(self, job: str, record: JobRecord, rung: int) -> float | None | _Waiting:
        """The score the evaluation of the rung's checkpoint gave, once it ended."""
        task, _, key = self.settings.metric.partition("/")
        evaluation = next((
            other for name, other in self.ledger.state.jobs.items()
            if other.kind is JobKind.EVALUATION and task in other.tasks and evaluated(name) == (job, rung - 1)
        ), None)
        if evaluation is None:  # not submitted yet: its checkpoint is not saved, or not yet seen
            return None if record.status.terminal and not self._rung_saved(job, record, rung) else WAITING
        if not evaluation.status.terminal:
            return WAITING
        metrics = evaluation.scores.get(task, {}).get("metrics") or {}
        return score_of(metrics, key)

    def _carry_out(self, decision: RungDecision, faults: Containment) -> None:
        """Record the decision; stop the point's jobs still running when it is pruned (a
        cancel that fails is logged, and the decision stands)."""
        self.ledger.state.rungs.append(decision)
        stopped = []
        if not decision.kept:
            for job in decision.jobs:
                record = self.ledger.state.jobs[job]
                if not record.status.terminal:
                    record.pruned_at = decision.rung
                    if faults.run(job, self.name, lambda: self.capabilities.cancel(job)):
                        stopped.append(job)
        if not decision.kept:
            why = f"pruned: {', '.join(stopped)} stopped, checkpoints kept" if stopped else "pruned: its jobs had ended already"
        elif decision.rank > max(1, decision.reached // self.settings.eta):  # too few to rank
            why = f"kept: only {decision.reached} points reach the rung"
        else:
            why = f"kept: among the best 1/{self.settings.eta}"
        self.ledger.events.write(
            "PRUNING", decision.point, ("Rung", f"{decision.rung} {self.settings.unit.value}"),
            ("Measure", f"{self.settings.metric} {decision.measure:.6g}"), ("Rank", f"{decision.rank} of {decision.reached}"),
            ("Result", why),
        )
        log.info("%s at rung %d (%s %.4g, %d of %d): %s", decision.point, decision.rung, self.settings.metric,
                 decision.measure, decision.rank, decision.reached, why)


def score_of(metrics: dict[str, object], key: str) -> float | None:
    """A score from an evaluation's metrics (`<scorer>/<metric>`): `key` is that, or a scorer
    alone (its first metric but stderr); None when the evaluation has none."""
    if key in metrics:
        value = metrics[key]
    else:
        scorer = (value for name, value in metrics.items() if name.startswith(f"{key}/") and not name.endswith("/stderr"))
        value = next(scorer, None)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
