"""What goes wrong while the monitor handles one job in one poll costs that job's handling in
that poll, never the monitor.

Each failure is logged once, as a POLL_FAILED entry naming the job, the stage of its
handling, the error and where it was raised (again only if the error changes); the job is
handled again at the next poll, and every other job goes on being monitored. Only losing the
sweep dir itself ends the monitor (MonitorStopped): nothing could be recorded any more.
"""

from __future__ import annotations

import errno
import logging
import traceback
from pathlib import Path
from typing import Callable

from ttlaunch.base.errors import MonitorStopped
from ttlaunch.base.times import timestamp
from ttlaunch.records.event_log import EventLog

log = logging.getLogger(__name__)

# The "job" named for stages that concern the whole sweep (records, summary, status check).
SWEEP = "(sweep)"


# The sweep dir takes no more writes (full, over quota, read-only): one condition for the
# whole sweep, said once, not a failure of each job's handling.
_CANNOT_RECORD = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


class Containment:
    def __init__(self, events: EventLog, sweep_dir: Path) -> None:
        self.events = events
        self.sweep_dir = sweep_dir
        self._failing: dict[tuple[str, str], str] = {}  # (job, stage) -> the error last logged
        self.cannot_record: tuple[str, str] | None = None  # (error, since) while nothing can be recorded

    def run(self, job: str, stage: str, action: Callable[[], object]) -> bool:
        """Run one stage of one job's handling; whether it went through."""
        try:
            action()
        except MonitorStopped:
            raise
        except Exception as err:
            self.check_sweep_dir(err)
            if isinstance(err, OSError) and err.errno in _CANNOT_RECORD:
                self._stopped_recording(err)
            else:
                self._report(job, stage, err)
            return False
        self._failing.pop((job, stage), None)
        return True

    def _stopped_recording(self, err: OSError) -> None:
        if self.cannot_record is not None:
            return
        self.cannot_record = (f"{err.strerror or err} (errno {err.errno})", timestamp())
        log.warning(
            "cannot record in %s: %s; monitoring goes on, and records again as soon as it can",
            self.sweep_dir, self.cannot_record[0],
        )

    def recorded(self) -> None:
        """The sweep's records were written: if they could not be for a while, say that it is over."""
        if self.cannot_record is None:
            return
        error, since = self.cannot_record
        self.cannot_record = None
        log.warning("recording again in %s (it could not since %s)", self.sweep_dir, since)
        self.run(SWEEP, "event log", lambda: self.events.write(
            "POLL_FAILED", "Could not record", ("Error", error), ("Since", since),
            ("Note", "the jobs' changes of that time were recorded when it could again"),
        ))

    def check_sweep_dir(self, cause: BaseException | None = None) -> None:
        """MonitorStopped when the sweep dir is gone (deleted, unmounted)."""
        if not self.sweep_dir.is_dir():
            raise MonitorStopped(self.sweep_dir, f"the sweep dir {self.sweep_dir} is gone") from cause

    @property
    def failing(self) -> dict[tuple[str, str], str]:
        """(job, stage) -> error, for the stages whose last try failed."""
        return dict(self._failing)

    def _report(self, job: str, stage: str, err: Exception) -> None:
        error = f"{type(err).__name__}: {err}"
        if self._failing.get((job, stage)) == error:  # said already
            return
        self._failing[(job, stage)] = error
        frames = traceback.extract_tb(err.__traceback__)
        where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name}" if frames else "-"
        log.warning("handling %s (%s) failed, retried at the next poll: %s", job, stage, error)
        try:
            self.events.write(
                "POLL_FAILED", f"Handling {job} failed", ("Job", job), ("Stage", stage), ("Error", error),
                ("Where", where), ("Note", "retried at the next poll; the other jobs are monitored as usual"),
            )
        except OSError as unwritable:  # the warning above is all the user gets
            log.warning("and the event log cannot be written: %s", unwritable)
