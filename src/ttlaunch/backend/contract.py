"""The one contract of where a sweep's jobs run (SLURM, or the local executor on this machine).

The submitter submits through it; the monitor observes, waits for ends and stops through it;
rules cancel through it. Nothing else asks which backend it has: what differs between the two
is a method or one of the facts below. Backends are chosen by name (backend_for), the name
that jobs.json records as the sweep's executor.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence, Union

from ttlaunch.backend.job_requests import LocalRequest, SlurmRequest, SubmissionSettings
from ttlaunch.backend.observation import Observation
from ttlaunch.inputs.schema import ComputeConfig, Executor
from ttlaunch.records.jobs_file import JobRecord

if TYPE_CHECKING:  # submitit loads only where jobs are submitted
    from submitit import Job

JobRequest = Union[SlurmRequest, LocalRequest]


class JobBackend(Protocol):
    name: Executor  # the sweep's executor, as jobs.json and SUBMIT_JOB record it
    scheduler: str  # who is asked at each poll, for the messages that say it did not answer
    poll_command: str  # what a STATUS_CHECK says was asked
    poll_interval_s: float  # the time between polls unless the monitor's settings say otherwise
    # Jobs are processes of this machine, children of the launch: they need its monitor to the
    # end, stop with it (Ctrl-C, a kill), run one task each and see this machine's files.
    runs_here: bool

    @property
    def accounting(self) -> bool:
        """The compute metrics of ended jobs can be read (sacct, seff)."""
        ...

    def request(self, name: str, compute: ComputeConfig, settings: SubmissionSettings) -> JobRequest:
        """What the job asks the scheduler for (its time limit is recorded from it)."""
        ...

    def submit(
        self, name: str, folder: Path, request: JobRequest, job_callable: Callable[..., Any], args: Sequence[object]
    ) -> Job[Any]:
        """Submit `job_callable(*args)` with submitit's files in `folder`; raises when refused."""
        ...

    def script(self, name: str, folder: Path, request: JobRequest, payload: str) -> tuple[str, str]:
        """A dry run's file name and text for the job: its batch script, or the command line it runs."""
        ...

    def observe(self, records: Mapping[str, JobRecord]) -> dict[str, Observation]:
        """One poll: job name -> what is known of each job (all with job ids). Raises when the
        scheduler did not answer; the next poll asks again."""
        ...

    def end_check_every_s(self, check_s: float) -> float | None:
        """Between polls, look for ended jobs this often (`check_s`: the monitor's end_check_s);
        None: nothing to look at, sleep until the poll."""
        ...

    def ended(self, records: Mapping[str, JobRecord], now: float) -> dict[str, Observation]:
        """Between polls: what is known of the jobs seen ending since the last look (cheap: no
        queue listing). `now` is the monitor's clock."""
        ...

    def finished(self, records: Mapping[str, JobRecord], now: float) -> bool:
        """Whether each of these jobs looks ended, as far as can be told at no scheduler cost
        (on SLURM: it wrote its result file), and a look would learn something by `now` (the
        monitor's clock): then the monitor looks for their ends at once, not at its next end
        check."""
        ...

    def take_notices(self) -> list[str]:
        """What the monitor should tell the user of the scheduler, once each (then forgotten)."""
        ...

    def cancel(self, record: JobRecord) -> None:
        """Ask the job to stop (a rule's cancel); raises when this backend cannot reach it."""
        ...

    def stoppable(self, names: Sequence[str]) -> list[str]:
        """Of these unended jobs, those that must stop with an interrupted launch."""
        ...

    def stop(self, names: Sequence[str], timeout_s: float) -> None:
        """Stop these jobs and wait until they ended (killing what outlives `timeout_s`)."""
        ...
