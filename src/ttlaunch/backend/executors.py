"""The backend of a sweep, from its executor (the launcher's setting, jobs.json's record)."""

from __future__ import annotations

import getpass
from typing import Callable

from ttlaunch.backend.contract import JobBackend
from ttlaunch.backend.local_jobs import LocalBackend
from ttlaunch.backend.slurm_jobs import SlurmBackend
from ttlaunch.inputs.schema import Executor

_BACKENDS: dict[Executor, Callable[[], JobBackend]] = {
    Executor.local: LocalBackend, Executor.slurm: lambda: SlurmBackend(getpass.getuser()),
}


def backend_for(executor: Executor) -> JobBackend:
    """A new backend for a sweep run by `executor`."""
    return _BACKENDS[executor]()
