"""submitit's local executor, each job in a session of its own (imported where jobs are submitted:
submitit is not cheap to import)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import submitit
from submitit.local.local import LocalJob

from ttlaunch.backend.job_requests import LocalRequest


class _OwnSessionLocalExecutor(submitit.LocalExecutor):
    """submitit's local executor, but each job's controller (and so its tasks and payload)
    runs in a session of its own.

    In the launcher's process group, a Ctrl-C in the terminal would reach every controller,
    task and payload at once: each controller prints its own KeyboardInterrupt traceback and
    kills its tasks one second later. Here the launcher alone gets it, and stops its jobs
    itself (ttlaunch.backend.local_jobs.stop_local_job). The controller's contract (its environment variables, its
    job id = its pid) is submitit's `start_controller`, pinned with submitit <2, for the
    parameters a LocalRequest sets (timeout, GPUs, stderr_to_stdout; no setup commands, no visible_gpus).
    """

    def _submit_command(self, command: str) -> LocalJob[Any]:  # as submitit's LocalExecutor declares it
        tasks = int(self.parameters.get("tasks_per_node", 1))
        gpus = int(self.parameters.get("gpus_per_node", 0))
        env = {
            **os.environ,
            "SUBMITIT_LOCAL_NTASKS": str(tasks),
            "SUBMITIT_LOCAL_COMMAND": command,
            "SUBMITIT_LOCAL_TIMEOUT_S": str(int(60 * self.parameters.get("timeout_min", 2.0))),
            "SUBMITIT_LOCAL_SIGNAL_DELAY_S": str(int(self.parameters.get("signal_delay_s", 30))),
            "SUBMITIT_LOCAL_NODEID": "0",
            "SUBMITIT_LOCAL_JOB_NUM_NODES": "1",
            "SUBMITIT_STDERR_TO_STDOUT": "1" if self.parameters.get("stderr_to_stdout") else "",
            "SUBMITIT_EXECUTOR": "local",
            "CUDA_VISIBLE_DEVICES": ",".join(str(k) for k in range(gpus)),
            "SUBMITIT_LOCAL_WITH_SHELL": "",
        }
        controller = subprocess.Popen(
            [sys.executable, "-m", "submitit.local._local", str(self.folder)], env=env, start_new_session=True
        )
        return LocalJob(folder=self.folder, job_id=str(controller.pid), process=controller, tasks=list(range(tasks)))


def local_executor(folder: Path, request: LocalRequest) -> submitit.LocalExecutor:
    executor = _OwnSessionLocalExecutor(folder=folder)
    executor.update_parameters(**request.submitit_parameters())
    return executor
