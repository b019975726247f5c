"""Jobs of submitit's local executor, this machine's scheduler: each job is a process
session of its own (ttlaunch.submit.executors), its job id the controller's pid."""

from __future__ import annotations

import os
import signal


def stop_local_job(job_id: str, kill: bool = False) -> None:
    """Ask a local job to stop: SIGTERM to its controller, which passes it to its tasks; each
    task stops its payload with a grace period (ttlaunch.job.task). `kill`: SIGKILL to the job's
    whole session, for a job that did not stop when asked. Gone already: nothing to do."""
    try:
        if kill:
            os.killpg(int(job_id), signal.SIGKILL)
        else:
            os.kill(int(job_id), signal.SIGTERM)
    except ProcessLookupError:
        pass
