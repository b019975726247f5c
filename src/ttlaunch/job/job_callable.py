"""The callable every job of a launch runs (submitit pickles it into each job)."""

from __future__ import annotations

import os
import pickle
import sys
from typing import TYPE_CHECKING, Callable, Sequence

from ttlaunch.base import environment

if TYPE_CHECKING:  # each job loads this module first: no more imports than it runs
    from hydra.core.utils import JobReturn
    from submitit.helpers import DelayedSubmission

    from ttlaunch.job.combination_configs import CombinationConfigs


class PrePickledJob:
    """What each job runs: the launcher and Hydra's singleton state, pickled once per launch.

    submitit pickles the callable and its arguments for every job; pickling the launcher
    (the whole composed config and Hydra's context) 50 times costs more than the sbatch
    calls. Here each job's own pickle holds the same bytes and its overrides only.

    It is a submitit Checkpointable: when SLURM warns of preemption before the task
    function started, submitit requeues the same call (`checkpoint`); from then on
    ttlaunch.job.requeue handles the warning. Either way the next attempt decides from disk
    where to resume.

    It lives apart from the submitter, in a module of few imports: each job loads it first,
    and a trivial job's CPU goes mostly to imports.

    `import_paths`: where the job imports the app from first (a code snapshot's,
    ttlaunch.submit.code_snapshot), before it loads the pickle that names the app's modules;
    its subprocesses too. `configs`: each job's composed config where the launch composed
    them (ttlaunch.job.combination_configs); a job of none composes its own.
    """

    def __init__(
        self, launcher: Callable[..., JobReturn], singleton_state: object, import_paths: Sequence[str] = (),
        configs: CombinationConfigs | None = None,
    ) -> None:
        # cloudpickle loads only where jobs are submitted.
        import cloudpickle

        self.blob = cloudpickle.dumps((launcher, singleton_state, configs))
        self.import_paths = tuple(import_paths)

    # The same bytes run the same: a monitor session read back holds an equal job callable.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrePickledJob) and (self.blob, self.import_paths) == (other.blob, other.import_paths)

    def __hash__(self) -> int:
        return hash((self.blob, self.import_paths))

    def __call__(self, overrides: list[str], job_dir_key: str, index: int, job_id: str) -> JobReturn:
        if self.import_paths:
            sys.path[:0] = self.import_paths
            inherited = filter(None, [os.environ.get(environment.PYTHONPATH)])
            os.environ[environment.PYTHONPATH] = os.pathsep.join([*self.import_paths, *inherited])
        launcher, singleton_state, configs = pickle.loads(self.blob)
        config = configs.config_for(overrides) if configs is not None else None
        returned: JobReturn = launcher(overrides, job_dir_key, index, job_id, singleton_state, config)
        return returned

    def checkpoint(self, *args: object) -> DelayedSubmission:
        """The same call again, for submitit to requeue."""
        # submitit loads only where jobs are submitted or run.
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args)
