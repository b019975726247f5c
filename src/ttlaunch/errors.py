"""Errors that ttlaunch reports to the user in one line, without a traceback."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """What `ttlaunch launch` and `ttlaunch status` exit with, for the whole sweep."""

    OK = 0  # every run completed (or, detached or only looking, none has failed so far)
    RUNS_FAILED = 1  # some run ended without completing, or the monitor had to stop
    BAD_INPUT = 2  # bad input, a damaged or unwritable sweep, a busy sweep, a bad command line
    INTERRUPTED = 130  # Ctrl-C, kill, a closed terminal (the shell's convention for SIGINT)

class InputError(Exception):
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


class DamagedFile(InputError):
    """One of the sweep's own files cannot be read as what it should be (cut short, edited,
    from another version): named with what is wrong and how to go on; nothing is submitted."""

    def __init__(self, path: object, problem: str, way_on: str) -> None:
        super().__init__(str(path), problem, way_on)

    def __str__(self) -> str:
        return f"{self.source}: {self.field}. {self.message}"


class UnwritableSweep(InputError):
    """The sweep dir cannot be written (read-only, full, no permission): found before the
    first submission, so nothing is submitted that could not be recorded."""

    def __init__(self, path: object, error: OSError) -> None:
        reason = error.strerror or str(error)
        super().__init__(str(path), "cannot be written", f"{reason} (errno {error.errno}); nothing was submitted")


class PayloadFailed(RuntimeError):
    """The payload command of a run exited non-zero (raised inside the job)."""

    def __init__(self, run_name: str, exit_code: int, argv: list[str]) -> None:
        super().__init__(run_name, exit_code, argv)
        self.run_name = run_name
        self.exit_code = exit_code
        self.argv = argv

    def __str__(self) -> str:
        return f"payload of run '{self.run_name}' exited with code {self.exit_code}: {' '.join(self.argv)}"


class StoppedByTTLaunch(RuntimeError):
    """A local job was asked to stop by its launcher (Ctrl-C, a rule's cancel): raised inside
    the job, which stops its payload on the way out."""


class SweepFailed(RuntimeError):
    """Some jobs of the sweep did not complete (reported after all of them ended)."""

    def __init__(self, failed: list[str], total: int, log_path: str) -> None:
        super().__init__(failed, total, log_path)
        self.failed = failed
        self.total = total
        self.log_path = log_path

    def __str__(self) -> str:
        return f"{len(self.failed)} of {self.total} jobs did not complete: {', '.join(self.failed)}; see {self.log_path}"


class SweepBusy(RuntimeError):
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


class MonitorStopped(RuntimeError):
    """The monitor cannot go on (its sweep dir is gone); the jobs are left as they are."""

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
    exits 130). Still a KeyboardInterrupt: any other Hydra app ends as a Python program
    interrupted by Ctrl-C does, with this message last."""
