"""ttlaunch's Hydra launcher: thin; the work is in ttlaunch.submit (imported lazily).

It serves ttlaunch's own app (its sweeper plans one job per run of an experiment) and any
other Hydra app (Hydra's basic sweeper hands it the sweep's override lists; each job runs
the app's task function).
"""

from copy import deepcopy
from typing import Any, List, Optional, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, run_job, setup_globals
from omegaconf import DictConfig, open_dict
from omegaconf.basecontainer import BaseContainer

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher

# Already imported at Hydra's start by this plugin's config (its schema: OmegaConf only).
from ttlaunch.inputs.schema import Executor, Relaunch


class TTLaunchLauncher(BaseSubmititLauncher):
    """Submits the jobs, paced by the stagger hook, and hands them to the monitor callback.

    The instance is also the callable each job runs (inherited from the submitit launcher).
    Its settings beyond the ones below (resources named as hydra-submitit-launcher names
    them) are read from the config by ttlaunch.inputs.launch_inputs.read_scheduling.
    """

    def __init__(
        self,
        executor: Executor,
        stagger: Any,  # a hook's config or instance (hook_or_default reads it)
        signal_delay_s: int,
        max_submitted: Optional[int],
        dry_run: bool,
        snapshot: bool,
        resubmit_failed: bool,
        relaunch: Optional[Relaunch],
        array_parallelism: Optional[int],
        srun_args: Optional[List[str]],
        use_srun: bool,
        stderr_to_stdout: bool,
        submitit_folder: Optional[str],
        name: Optional[str],
        metrics: Any,  # a config node, typed just below
        **resources: Any,  # hydra-submitit-launcher's settings, checked below
    ) -> None:
        super().__init__()
        # Hydra imports this plugin at every start of any app: ttlaunch's code loads when used.
        from ttlaunch.backend.job_requests import SubmititOptions
        from ttlaunch.inputs.schema import LAUNCHER_RESOURCES, TrainingMetricsConfig, typed
        from ttlaunch.job.stagger import hook_or_default

        unknown = sorted(set(resources) - set(LAUNCHER_RESOURCES))
        if unknown:  # Hydra's schema (LauncherConf) types them; the config reader reads them
            raise ValueError(f"hydra.launcher: unknown settings {', '.join(unknown)}")
        for setting, cap in (("max_submitted", max_submitted), ("array_parallelism", array_parallelism)):
            if cap is not None and cap < 1:
                raise ValueError(f"hydra.launcher.{setting}: expected a positive number, got {cap}")
        # Typed by Hydra's schema (LauncherConf); a word where the launcher is built otherwise.
        self.executor = Executor(executor)
        self.stagger = hook_or_default(stagger)
        self.signal_delay_s = signal_delay_s
        self.max_submitted = max_submitted if max_submitted is not None else array_parallelism
        self.submitit_options = SubmititOptions(
            stderr_to_stdout=stderr_to_stdout, srun_args=tuple(srun_args or ()), use_srun=use_srun, folder=submitit_folder
        )
        self.sweep_name = name
        self.metrics = typed(metrics, TrainingMetricsConfig, "hydra.launcher", "metrics")
        self.dry_run = dry_run
        self.snapshot = snapshot
        self.resubmit_failed = resubmit_failed
        self._relaunch = Relaunch(relaunch) if relaunch is not None else None

    def __getstate__(self) -> dict[str, Any]:  # what pickle keeps of the launcher
        """What each job gets of the launcher: not what only the launching process uses (the
        launch: how it submits), nor their modules."""
        return {key: value for key, value in self.__dict__.items() if key != "submitit_options"}

    @property
    def runs_experiment(self) -> bool:
        """ttlaunch's own app, whose sweeper planned the jobs (else any other Hydra app)."""
        assert self.config is not None
        return bool(self.config.hydra.runtime.choices.get("hydra/sweeper") == "ttlaunch")

    @property
    def relaunch(self) -> Relaunch:
        """hydra.launcher.relaunch; unset, resume for ttlaunch's own app, rerun for any other."""
        return self._relaunch or (Relaunch.resume if self.runs_experiment else Relaunch.rerun)

    def __call__(  # BaseSubmititLauncher.__call__'s arguments, and the job's config where the launch composed it
        self, sweep_overrides: List[str], job_dir_key: str, job_num: int, job_id: str,
        singleton_state: Any,  # Hydra's Singleton.get_state()
        config: Optional[DictConfig] = None,
    ) -> JobReturn:
        """Runs in the job (ttlaunch.job.job_callable.PrePickledJob calls it). Hydra's run_job
        turns a raising task into a returned failure, which the scheduler would record as
        COMPLETED; raise it so the job exits non-zero."""
        result: JobReturn
        args = (sweep_overrides, job_dir_key, job_num, job_id, singleton_state)
        if self.runs_experiment:
            result = self._run(config, *args)
        else:
            # Hydra imports this plugin at every start of any app: ttlaunch's code loads when used.
            from ttlaunch.job.app_attempt import run_app_attempt

            result = run_app_attempt(self, lambda: self._run(config, *args))
        if result.status is JobStatus.FAILED:
            _ = result.return_value  # raises the task's exception
        return result

    def _run(
        self, config: Optional[DictConfig], sweep_overrides: List[str], job_dir_key: str, job_num: int, job_id: str,
        singleton_state: Any,  # Hydra's Singleton.get_state()
    ) -> JobReturn:
        """BaseSubmititLauncher.__call__, with the job's config given where the launch composed
        it (else composed here, as there), and Hydra's singletons restored without
        `Singleton.set_state`'s eager re-scan of every installed plugin: Plugins is built
        when first asked for, as a Singleton is, and a job that never asks saves the scan's
        imports (a fifth of a trivial job's CPU goes to Hydra's and the plugins' modules)."""
        # submitit loads only where jobs are submitted or run.
        import submitit

        assert self.hydra_context is not None and self.task_function is not None  # set before the launch
        Singleton._instances = singleton_state["instances"]
        BaseContainer._resolvers = deepcopy(singleton_state["omegaconf_resolvers"])
        setup_globals()
        if config is None:
            assert self.config is not None
            config = self.hydra_context.config_loader.load_sweep_config(self.config, sweep_overrides)
        with open_dict(config.hydra.job):
            config.hydra.job.id = submitit.JobEnvironment().job_id
            config.hydra.job.num = job_num
        return run_job(
            hydra_context=self.hydra_context, task_function=self.task_function, config=config, job_dir_key=job_dir_key,
            job_subdir_key="hydra.sweep.subdir",
        )

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Any Hydra app's sweep: submit; then the monitor callback watches the sweep (to its
        end, unless it detaches). ttlaunch's own app is launched by its sweeper, which has
        validated the inputs (ttlaunch.submit.own_app_launch.run_sweep); both go through
        ttlaunch.submit.sweep_launch.launch."""
        if self.runs_experiment:
            raise RuntimeError("ttlaunch's own runs are launched by its sweeper (hydra/sweeper=ttlaunch)")
        # Hydra imports this plugin at every start of any app: ttlaunch's code loads when used.
        from ttlaunch.submit.any_app_launch import launch_app

        return launch_app(self, job_overrides, initial_job_idx)
