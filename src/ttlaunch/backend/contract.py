"""The one contract of where a sweep's jobs run (SLURM, or the local executor on this machine).

The submitter submits through it; the monitor observes, waits for ends, collects compute
metrics and stops through it; rules cancel through it; the monitor job is submitted and
looked at through it. Nothing else asks which backend it has or runs a scheduler's command:
what differs between backends is a method or one of the facts below. Backends are chosen by name (backend_for), the name
that jobs.json records as the sweep's executor.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Protocol, Sequence, Union

from ttlaunch.backend.job_requests import LocalRequest, SlurmRequest, SubmissionSettings
from ttlaunch.backend.observation import Observation
from ttlaunch.inputs.launch_inputs import LaunchInputs
from ttlaunch.inputs.schema import ComputeConfig, Executor
from ttlaunch.records.jobs_file import JobRecord
from ttlaunch.scheduler.metrics import ComputeMetrics, Usage
from ttlaunch.scheduler.states import JobState

if TYPE_CHECKING:  # submitit loads only where jobs are submitted
    from submitit import Job

JobRequest = Union[SlurmRequest, LocalRequest]


class JobBackend(Protocol):
    name: Executor  # the sweep's executor, as jobs.json and SUBMIT_JOB record it
    runner: str  # who runs the jobs and is asked at each poll, named in messages (SLURM, the local executor)
    poll_command: str  # what a STATUS_CHECK says was asked
    poll_interval_s: float  # the time between polls unless the monitor's settings say otherwise
    # Jobs run on after the launch that submitted them ends (SLURM's); else they are its
    # children and stop with it (Ctrl-C, a kill): the launch stops them and says so.
    jobs_outlive_launch: bool

    @property
    def accounting(self) -> bool:
        """The compute metrics of ended jobs can be read (sacct, seff)."""
        ...

    @property
    def efficiency_reports(self) -> bool:
        """Besides `usage`, each ended job's efficiency report can be asked for (seff)."""
        ...

    def usage(self, job_ids: Sequence[str]) -> Mapping[str, Usage]:
        """Ended jobs' compute metrics and time limits, by job id, in one question (asked only
        where `accounting`); raises SchedulerCommandError when refused."""
        ...

    def efficiency(self, job_id: str) -> ComputeMetrics | None:
        """An ended job's efficiency report (asked only where `efficiency_reports`); None while
        there is no data of it."""
        ...

    def ended_runs(self, job_id: str) -> list[JobState]:
        """How each run of a requeued job ended, oldest first ([] where nobody can say)."""
        ...

    def state_of(self, job_id: str) -> JobState | None:
        """Where one job stands by its id alone (the sweep's monitor job, which has no record):
        its queue state, else how it ended, or None while that is not known."""
        ...

    def nodes_of(self, job_id: str) -> list[str]:
        """The nodes the job's newest run ran on ([] where nobody can say)."""
        ...

    def partition_size(self, partition: str | None) -> int | None:
        """How many nodes the partition has (None where nobody can say)."""
        ...

    def check_monitoring(self, monitored: bool, detach: bool) -> None:
        """InputError, before anything is written, when this backend's jobs cannot be left
        unmonitored (`monitored`: the monitor callback is on) or to a monitor job (`detach`)."""
        ...

    def check_job(self, inputs: LaunchInputs, compute: ComputeConfig, argv: Sequence[str]) -> None:
        """InputError, before anything is written, for a job this backend cannot run as asked
        (`argv`: its payload's command)."""
        ...

    def request(self, name: str, compute: ComputeConfig, settings: SubmissionSettings) -> JobRequest:
        """What the job asks the scheduler for (its time limit is recorded from it)."""
        ...

    def submit(
        self, name: str, folder: Path, request: JobRequest, job_callable: Callable[..., object], args: Sequence[object]
    ) -> Job[object]:
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
