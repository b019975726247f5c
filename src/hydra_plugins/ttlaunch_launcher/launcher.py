"""ttlaunch's Hydra launcher: thin; the work is in ttlaunch.submit.submitter and
ttlaunch.monitor.sweep_monitor (imported lazily)."""

import sys
from pathlib import Path
from typing import Any, List, Optional, Sequence

from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher


class TTLaunchLauncher(BaseSubmititLauncher):
    """Submits the jobs, paced by the stagger hook, and hands them to the monitor callback.

    The instance is also the callable each job runs (inherited from the submitit launcher).
    """

    def __init__(
        self,
        executor: str,
        stagger: Any,
        signal_delay_s: int,
        max_submitted: Optional[int],
        dry_run: bool,
    ) -> None:
        super().__init__()
        if executor not in ("local", "slurm"):
            raise ValueError(f"hydra.launcher.executor: expected local or slurm, got {executor!r}")
        if max_submitted is not None and max_submitted < 1:
            raise ValueError(f"hydra.launcher.max_submitted: expected a positive number, got {max_submitted}")
        self.executor = executor
        from ttlaunch.submit.stagger import hook_or_default

        self.stagger = hook_or_default(stagger)
        self.signal_delay_s = signal_delay_s
        self.max_submitted = max_submitted
        self.dry_run = dry_run

    def __call__(self, *args: Any) -> JobReturn:
        """Runs in the job. Hydra's run_job turns a raising task into a returned failure,
        which the scheduler would record as COMPLETED; raise it so the job exits non-zero."""
        result = super().__call__(*args)
        if result.status is JobStatus.FAILED:
            _ = result.return_value  # raises the task's exception
        return result

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Submit; then the monitor callback watches the sweep (to its end, unless it detaches).

        The sweeper has validated the inputs, holds the sweep's lock and has saved the ledger.
        """
        from ttlaunch.errors import MonitorStopped, SweepInterrupted
        from ttlaunch.inputs.composed import read_inputs
        from ttlaunch.monitor.callback import find_monitor, reattach_hint
        from ttlaunch.records.ledger import Ledger
        from ttlaunch.submit.submitter import Submitter, interrupted_message, job_return

        assert self.config is not None and self.hydra_context is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        inputs = read_inputs(self.config, self.config.hydra)
        ledger = Ledger.open(sweep_dir, inputs.experiment.name)
        submitter = Submitter(ledger, inputs, self.executor, self.signal_delay_s)
        if self.dry_run:
            return submitter.dry_run(job_overrides)
        callback = find_monitor(self.hydra_context.callbacks)
        monitor = callback.monitor_for(ledger) if callback is not None else None
        if monitor is not None:
            from ttlaunch.submit.submitter import reactions_for

            monitor.reactions += reactions_for(inputs, ledger, submitter, monitor)
        try:
            names = submitter.submit_all(self, job_overrides, initial_job_idx, self.stagger, self.max_submitted, monitor)
            if callback is not None:
                callback.watch(monitor)
            else:
                print(
                    f"ttlaunch: submitted; monitoring is switched off. Follow with `{reattach_hint(sweep_dir)}`",
                    file=sys.stderr, flush=True,
                )
        except MonitorStopped:
            if monitor is not None and self.executor == "local":
                monitor.stop_local_jobs()
            raise
        except KeyboardInterrupt:
            if monitor is None or self.executor != "local":
                raise
            stopped = monitor.stop_local_jobs()
            raise SweepInterrupted(interrupted_message(stopped, job_overrides, submitter.submitted)) from None
        returns: List[JobReturn] = [job_return(ledger.state.jobs[name]) for name in names]
        return returns
