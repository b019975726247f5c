"""submitit executors built from typed requests (imported lazily: submitit is not cheap)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import submitit
from submitit.slurm.slurm import SlurmExecutor

from ttlaunch.requests import LocalRequest, SlurmRequest


def local_executor(folder: Path, request: LocalRequest) -> submitit.LocalExecutor:
    executor = submitit.LocalExecutor(folder=folder)
    executor.update_parameters(**request.submitit_parameters())
    return executor


def slurm_executor(folder: Path, request: SlurmRequest) -> SlurmExecutor:
    executor = SlurmExecutor(folder=folder, max_num_timeout=request.max_num_timeout)
    executor.update_parameters(**request.submitit_parameters())
    return executor


class _ScriptOnlySlurmExecutor(SlurmExecutor):
    """A SlurmExecutor that can render scripts where SLURM is not installed.

    The base class refuses to exist without `srun` on PATH; rendering a script needs none.
    """

    @classmethod
    def affinity(cls) -> int:
        return 1


def sbatch_script(folder: Path, request: SlurmRequest, python: str | None = None) -> str:
    """The batch script submitit would submit for this request, through its own code path
    (parameter conversion and script template), without submitting anything."""
    executor: Any = _ScriptOnlySlurmExecutor(folder=folder, max_num_timeout=request.max_num_timeout, python=python)
    executor.update_parameters(**request.submitit_parameters())
    # Private in submitit, but it is exactly the text its submission writes; submitit is pinned <2.
    return executor._make_submission_file_text(executor._submitit_command_str, "script")
