"""The backend of a sweep, from the executor's name (the launcher's setting, jobs.json's record)."""

from __future__ import annotations

import getpass

from ttlaunch.backend.contract import JobBackend
from ttlaunch.backend.local_jobs import LocalBackend
from ttlaunch.backend.slurm_jobs import SlurmBackend

EXECUTORS = ("local", "slurm")


def backend_for(executor: str) -> JobBackend:
    """A new backend for a sweep run by `executor` (local or slurm)."""
    if executor == "slurm":
        return SlurmBackend(getpass.getuser())
    if executor == "local":
        return LocalBackend()
    raise ValueError(f"unknown executor {executor!r}: expected {' or '.join(EXECUTORS)}")
