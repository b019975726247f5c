"""Errors that ttlaunch reports to the user in one line, without a traceback.

Every one is a TTLaunchError (Ctrl-C's SweepInterrupted, a KeyboardInterrupt, is the one
other): it carries the exit code the command ends with and its one line, and `exit_with` is
the one place that turns it into what the user sees and the exit.
"""

from __future__ import annotations

import enum
import sys
from typing import ClassVar


class ExitCode(enum.IntEnum):
    """What `ttlaunch launch` and `ttlaunch status` exit with, for the whole sweep."""

    OK = 0  # every run completed (or, detached or only looking, none has failed so far)
    RUNS_FAILED = 1  # some run ended without completing, or the monitor had to stop
    BAD_INPUT = 2  # bad input, a damaged or unwritable sweep, a busy sweep, a bad command line
    INTERRUPTED = 130  # Ctrl-C, kill, a closed terminal (the shell's convention for SIGINT)


class TTLaunchError(Exception):
    """An error the user is told of in one line, ending the command with `exit_code`."""

    exit_code: ClassVar[ExitCode] = ExitCode.BAD_INPUT

    @property
    def line(self) -> str:
        """What follows `ttlaunch: ` on stderr: `error: ...` for what the user must fix."""
        return f"error: {self}" if self.exit_code is ExitCode.BAD_INPUT else str(self)


def exit_with(err: TTLaunchError | SweepInterrupted) -> ExitCode:
    """Tell the user (one line on stderr) and give the exit code: every command ends an
    error this way."""
    print(f"ttlaunch: {err.line}", file=sys.stderr)
    return err.exit_code


class InputError(TTLaunchError):
    """Bad user input, found before anything is submitted or written.

    It names where the input came from (a file, or a config group choice) and
    the field that is wrong, so the user can go straight to it.
    """

    def __init__(self, source: str, field: str, message: str) -> None:
        super().__init__(source, field, message)
        self.source = source
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"{self.source}: {self.field}: {self.message}"


class NotASweep(TTLaunchError):
    """A dir given as a sweep's holds no jobs.json: no launch ever recorded anything there."""

    def __init__(self, sweep_dir: object, state_file: object) -> None:
        super().__init__(sweep_dir, state_file)
        self.sweep_dir = sweep_dir
        self.state_file = state_file

    def __str__(self) -> str:
        return f"{self.state_file}: no such file; is {self.sweep_dir} a ttlaunch sweep dir?"


class DamagedFile(TTLaunchError):
    """One of the sweep's own files cannot be read as what it should be (cut short, edited,
    from another version): named with what is wrong and how to go on; nothing is submitted."""

    def __init__(self, path: object, problem: str, way_on: str) -> None:
        super().__init__(path, problem, way_on)
        self.path = path
        self.problem = problem
        self.way_on = way_on

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}. {self.way_on}"


class UnwritableSweep(TTLaunchError):
    """The sweep dir cannot be written (read-only, full, no permission): found before the
    first submission, so nothing is submitted that could not be recorded."""

    def __init__(self, path: object, error: OSError) -> None:
        super().__init__(path, error)
        self.path = path
        self.error = error

    def __str__(self) -> str:
        reason = self.error.strerror or str(self.error)
        return f"{self.path}: cannot be written: {reason} (errno {self.error.errno}); nothing was submitted"


class PayloadFailed(TTLaunchError):
    """The payload command of a run exited non-zero (raised inside the job, which fails)."""

    exit_code = ExitCode.RUNS_FAILED

    def __init__(self, run_name: str, code: int, argv: list[str]) -> None:
        super().__init__(run_name, code, argv)
        self.run_name = run_name
        self.code = code  # the payload's own exit code
        self.argv = argv

    def __str__(self) -> str:
        return f"payload of run '{self.run_name}' exited with code {self.code}: {' '.join(self.argv)}"


class StoppedByTTLaunch(TTLaunchError):
    """A local job was asked to stop by its launcher (Ctrl-C, a rule's cancel): raised inside
    the job, which stops its payload on the way out."""

    exit_code = ExitCode.INTERRUPTED


class SweepFailed(TTLaunchError):
    """Some jobs of the sweep did not complete (reported after all of them ended)."""

    exit_code = ExitCode.RUNS_FAILED

    def __init__(self, failed: list[str], total: int, log_path: str) -> None:
        super().__init__(failed, total, log_path)
        self.failed = failed
        self.total = total
        self.log_path = log_path

    def __str__(self) -> str:
        return f"{len(self.failed)} of {self.total} jobs did not complete: {', '.join(self.failed)}; see {self.log_path}"


class SweepBusy(TTLaunchError):
    """Another launcher or monitor holds the sweep (ttlaunch.records.sweep_lock)."""

    def __init__(self, sweep_dir: object, holder: str) -> None:
        super().__init__(sweep_dir, holder)
        self.sweep_dir = sweep_dir
        self.holder = holder

    def __str__(self) -> str:
        return (
            f"{self.sweep_dir} is being launched or monitored already ({self.holder}); nothing was submitted. "
            f"Wait for it to end, or look with `python -m ttlaunch.status {self.sweep_dir}`."
        )


class MonitorStopped(TTLaunchError):
    """The monitor cannot go on (its sweep dir is gone); the jobs are left as they are."""

    exit_code = ExitCode.RUNS_FAILED

    def __init__(self, sweep_dir: object, reason: str) -> None:
        super().__init__(sweep_dir, reason)
        self.sweep_dir = sweep_dir
        self.reason = reason

    def __str__(self) -> str:
        return (
            f"monitoring stopped: {self.reason}. SLURM jobs keep running (local jobs stop with this process); "
            f"once the sweep dir is back, re-attach "
            f"with `python -m ttlaunch.status {self.sweep_dir} --follow` or the same launch command"
        )


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C: what was stopped and what the same command will do next (ttlaunch's launch
    exits 130). A KeyboardInterrupt, not a TTLaunchError: no `except Exception` may swallow
    it, and any other Hydra app ends as a Python program interrupted by Ctrl-C does, with
    this message last."""

    exit_code = ExitCode.INTERRUPTED

    @property
    def line(self) -> str:
        return str(self)
