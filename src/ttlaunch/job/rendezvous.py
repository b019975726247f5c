"""In a job of several tasks (one per node; or several on one node): where their trainers
meet, and what they agree on before starting.

Each task runs the same wrapper. Task ranks come from SLURM (SLURM_PROCID of SLURM_NTASKS);
the trainers meet at the first host of the job's node list, on a port derived from the job
id, with torchrun's static rendezvous (task 0's agent hosts it): `--nnodes`, `--node_rank`,
`--master_addr`, `--master_port`. Decisions that must be the same everywhere (where the
attempt resumes) are taken by task 0 and read by the others from the job dir.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from ttlaunch.base.files import write_atomically
from ttlaunch.scheduler.figure_readers import count

# Rendezvous ports: one per job id in this range, so jobs sharing a node do not collide.
PORT_BASE, PORT_SPAN = 20000, 20000
# How long a task waits for task 0's decision (task 0 may start later than the others).
AGREE_TIMEOUT_S = 600.0
_MAX_TASKS = 1 << 20


def task_rank(environ: Mapping[str, str] = os.environ) -> int:
    """This task's rank in its job (0 for a job of one task)."""
    return count(environ.get("SLURM_PROCID"), _MAX_TASKS) or 0


@dataclass(frozen=True)
class Rendezvous:
    tasks: int
    rank: int
    master_addr: str
    master_port: int

    def torchrun_args(self) -> list[str]:
        return [
            "--nnodes", str(self.tasks), "--node_rank", str(self.rank),
            "--master_addr", self.master_addr, "--master_port", str(self.master_port),
        ]


def rendezvous_of(environ: Mapping[str, str], hostnames: Callable[[str], list[str]]) -> Rendezvous | None:
    """Where this job's tasks meet; None for a job of one task."""
    tasks = count(environ.get("SLURM_NTASKS"), _MAX_TASKS) or 1
    if tasks < 2:
        return None
    job_id = count(environ.get("SLURM_JOB_ID"), 1 << 62) or 0
    return Rendezvous(
        tasks=tasks,
        rank=task_rank(environ),
        master_addr=hostnames(environ["SLURM_JOB_NODELIST"])[0],
        master_port=PORT_BASE + job_id % PORT_SPAN,
    )


def agreed(path: Path, rank: int, decide: Callable[[], str], timeout_s: float = AGREE_TIMEOUT_S) -> str:
    """Task 0 decides and writes `path`; every other task waits for it and reads it, so all
    of them act on one decision."""
    if rank == 0:
        decision = decide()
        write_atomically(path, json.dumps(decision))
        return decision
    deadline = time.monotonic() + timeout_s
    while not path.is_file():
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {rank}: task 0 wrote no decision to {path} in {timeout_s:.0f} s")
        time.sleep(0.5)
    return str(json.loads(path.read_text(encoding="utf-8")))
