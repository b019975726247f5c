"""In the job, with requeue=on: what to do when SLURM warns that the job is about to end.

SLURM sends USR2 `signal_delay_s` before the time limit, and on preemption. From the moment
the job's task function starts, the handler here decides, by the budget the submission
computed (RequeuePolicy): a timeout beyond `max_num_timeout` runs on to the limit (SLURM
records TIMEOUT); otherwise a running payload gets SIGTERM and `grace_s` to save and exit
(then SIGKILL), the requeue is recorded in `<job dir>/requeues.json` with its reason, and the
job goes back into the queue. The next attempt decides from disk where to resume
(ttlaunch.job.resume), so it needs nothing from this one but its files.

In the second or so before the task function starts, submitit's own handler answers the
signal through the job callable's `checkpoint()` (ttlaunch.job.job_callable.PrePickledJob):
it requeues a preemption, never a timeout (its own timeout budget is zero), so timeouts are
counted here alone.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping

from ttlaunch.base import environment
from ttlaunch.base.files import write_atomically
from ttlaunch.base.times import timestamp
from ttlaunch.scheduler.figure_readers import count
from ttlaunch.scheduler.slurm import MAX_RESTARTS

log = logging.getLogger(__name__)

REQUEUES_NAME = "requeues.json"
# A warning this close to the time limit (beyond SLURM's signal delay) is the time limit's.
TIMEOUT_SLACK_S = 60.0


def current_attempt(environ: Mapping[str, str] = os.environ) -> int:
    """1 for the first start of a job; SLURM counts the restarts after requeues."""
    return (count(environ.get("SLURM_RESTART_COUNT"), MAX_RESTARTS) or 0) + 1


@dataclass(frozen=True)
class Requeue:
    """One requeue the job made itself: the attempt that ended, why, when."""

    attempt: int
    reason: str
    at: str


def parse_requeues(text: str) -> list[Requeue]:
    """requeues.json's entries; an entry that is not one (a file cut short, edited, from
    elsewhere) is left out, and a file that is not a JSON list holds none."""
    try:
        data = json.loads(text)
    except ValueError:
        return []
    if not isinstance(data, list):
        return []
    entries = []
    for item in data:
        if not isinstance(item, dict):
            continue
        attempt, reason = item.get("attempt"), item.get("reason")
        if type(attempt) is int and attempt >= 1 and isinstance(reason, str):
            entries.append(Requeue(attempt, reason, str(item.get("at", ""))))
    return entries


def read_requeues(job_dir: Path) -> list[Requeue]:
    try:
        data = (job_dir / REQUEUES_NAME).read_bytes()
    except OSError:  # none yet
        return []
    return parse_requeues(data.decode("utf-8", errors="replace"))


def record_requeue(job_dir: Path, attempt: int, reason: str) -> None:
    entries = [*map(asdict, read_requeues(job_dir)), {"attempt": attempt, "reason": reason, "at": timestamp()}]
    write_atomically(job_dir / REQUEUES_NAME, json.dumps(entries, indent=2) + "\n")


@dataclass(frozen=True)
class RequeuePolicy:
    """A job's requeue budget, computed once at submission (ttlaunch.backend.job_requests)
    and read back in the job. Timeouts are counted in one place, requeues.json."""

    max_num_timeout: int
    grace_s: float
    time_limit_s: float
    signal_delay_s: float

    def is_timeout(self, elapsed_s: float) -> bool:
        """A warning late in the attempt comes from the time limit; an early one, from preemption."""
        return elapsed_s >= self.time_limit_s - self.signal_delay_s - TIMEOUT_SLACK_S

    def as_variable(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> RequeuePolicy | None:
        """The policy the submission exported; None for a job submitted with requeue=off."""
        text = environ.get(environment.REQUEUE_POLICY)
        return cls(**json.loads(text)) if text else None


class EndWarning:
    """The USR2 handler of task 0 for the whole attempt (see the module's docstring).

    Before the payload starts, nothing needs saving: a requeue decided then is carried out at
    once. Once the payload runs (`attach`), the handler only decides and the job's main loop
    acts (`act`) between its waits for the payload: a signal handler interrupts that very
    wait, and waiting on the payload again from inside it would deadlock on the process's
    wait lock.
    """

    def __init__(
        self,
        job_dir: Path,
        job_id: str,
        attempt: int,
        policy: RequeuePolicy,
        requeue: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        save: Callable[[], object] | None = None,
    ) -> None:
        self.job_dir, self.job_id, self.attempt, self.policy = job_dir, job_id, attempt, policy
        self._requeue, self._clock = requeue, clock
        # An app's task function running in this very process: what it saves before a requeue
        # (its `checkpoint` method), called from the handler (ttlaunch.job.app_attempt).
        self._save = save
        self._stop_payload: Callable[[float], None] | None = None
        self._started = clock()
        self.requested: str | None = None  # the reason of a requeue decided, not yet carried out

    def attach(self, stop_payload: Callable[[float], None]) -> None:
        """The payload runs from now on: requeues wait for `act`, which stops it first."""
        self._stop_payload = stop_payload

    def __call__(self, signum: int, frame: object) -> None:
        elapsed = self._clock() - self._started
        reason = "timeout" if self.policy.is_timeout(elapsed) else "preempted"
        timeouts = sum(entry.reason == "timeout" for entry in read_requeues(self.job_dir))
        if reason == "timeout" and timeouts >= self.policy.max_num_timeout:
            log.warning(
                "time limit near; not requeued: %d timeouts already (requeue.max_num_timeout=%d); running on",
                timeouts, self.policy.max_num_timeout,
            )
            return
        self.requested = reason
        if self._stop_payload is None:
            self.act()

    def act(self) -> None:
        """Carry out a requeue the handler decided: stop the payload, record, requeue, exit."""
        if self.requested is None:
            return
        reason = self.requested
        if self._stop_payload is not None:
            log.warning(
                "attempt %d ends (%s): stopping the payload (%.0f s to save), then requeueing",
                self.attempt, reason, self.policy.grace_s,
            )
            self._stop_payload(self.policy.grace_s)
        elif self._save is not None:
            log.warning("attempt %d ends (%s): the task saves (its checkpoint method), then the job is requeued", self.attempt, reason)
            try:
                self._save()
            except Exception:  # a failed save must not cost the requeue: the next attempt resumes from what is on disk
                log.exception("the task's checkpoint method failed; requeueing all the same")
        else:
            log.warning("attempt %d ends (%s) before its payload started: requeueing", self.attempt, reason)
        record_requeue(self.job_dir, self.attempt, reason)
        self._requeue(self.job_id)
        raise SystemExit(f"ttlaunch: job {self.job_id} requeued ({reason}); attempt {self.attempt + 1} resumes from disk")
