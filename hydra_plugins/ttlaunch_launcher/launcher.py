"""ttlaunch's Hydra launcher: thin; the work is in ttlaunch.launching (imported lazily)."""

from pathlib import Path
from typing import Any, List, Optional, Sequence

from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher


class TTLaunchLauncher(BaseSubmititLauncher):
    """Submits the jobs, paced by the stagger hook, then waits for all of them to end.

    The instance is also the callable each job runs (inherited from the submitit launcher).
    """

    def __init__(
        self,
        executor: str,
        stagger: Any,
        poll_interval_s: float,
        signal_delay_s: int,
        max_submitted: Optional[int],
        dry_run: bool,
        alert_after_failures: int,
    ) -> None:
        super().__init__()
        if executor not in ("local", "slurm"):
            raise ValueError(f"hydra.launcher.executor: expected local or slurm, got {executor!r}")
        if max_submitted is not None and max_submitted < 1:
            raise ValueError(f"hydra.launcher.max_submitted: expected a positive number, got {max_submitted}")
        self.executor = executor
        self.stagger = stagger
        self.poll_interval_s = poll_interval_s
        self.signal_delay_s = signal_delay_s
        self.max_submitted = max_submitted
        self.dry_run = dry_run
        self.alert_after_failures = alert_after_failures

    def __call__(self, *args: Any) -> JobReturn:
        """Runs in the job. Hydra's run_job turns a raising task into a returned failure,
        which the scheduler would record as COMPLETED; raise it so the job exits non-zero."""
        result = super().__call__(*args)
        if result.status is JobStatus.FAILED:
            _ = result.return_value  # raises the task's exception
        return result

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from ttlaunch.composed import read_inputs
        from ttlaunch.launching import SweepRun, job_returns

        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        inputs = read_inputs(self.config, self.config.hydra)
        run = SweepRun(sweep_dir, inputs, self.executor, self.signal_delay_s, self.alert_after_failures)
        if self.dry_run:
            return run.dry_run(job_overrides)
        try:
            tracked = run.submit_all(self, job_overrides, initial_job_idx, self.stagger, self.max_submitted, self.poll_interval_s)
            run.wait(tracked, self.poll_interval_s)
        except KeyboardInterrupt:
            run.stop_local_jobs()
            raise
        returns: List[JobReturn] = job_returns(tracked)
        return returns
