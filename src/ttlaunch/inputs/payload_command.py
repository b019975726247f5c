"""The command a job runs: what ttlaunch.inputs.payload builds for a run, and what a job
(ttlaunch.job) starts. A module of its own, of few imports: every job loads it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ttlaunch.base import environment


@dataclass(frozen=True)
class PayloadCommand:
    argv: tuple[str, ...]
    env: Mapping[str, str]
    output_dir: Path
    # Commands run before the payload in every job attempt (e.g. a copy to node-local disk).
    setup: tuple[tuple[str, ...], ...] = ()
    # Commands run once per sweep, by the first job (ttlaunch.job.preparation).
    prepare: tuple[tuple[str, ...], ...] = ()
    # Where it runs (None: where the job runs); a scaffold's batch script runs in its run's dir.
    cwd: Path | None = None

    @property
    def runs_script(self) -> bool:
        """A scaffold's batch script around the trainer (it runs in its run's dir): stopping
        it must signal its whole process group."""
        return self.cwd is not None

    def sweep_env(self) -> dict[str, str]:
        """The payload's environment without what describes the job: what the sweep's
        preparation runs with."""
        return {key: value for key, value in self.env.items() if not key.startswith(environment.PREFIX)}
