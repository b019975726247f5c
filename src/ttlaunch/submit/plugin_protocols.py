"""What ttlaunch's Hydra plugin hands the launching process: the launcher and sweeper
themselves, named by what is used of them. The plugin (hydra_plugins.ttlaunch_launcher) is
the layer above, so it is not imported here: its classes
meet these Protocols, which mypy checks where they hand themselves over, and a test checks
member by member (the launcher's base class is untyped: mypy takes any member as present)."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from ttlaunch.backend.job_requests import SubmititOptions
from ttlaunch.inputs.schema import Executor, Relaunch, TrainingMetricsConfig
from ttlaunch.job.stagger import StaggerHook


@runtime_checkable
class Launcher(Protocol):
    """ttlaunch's Hydra launcher (TTLaunchLauncher): its settings and Hydra's objects."""

    config: DictConfig | None
    hydra_context: HydraContext | None
    task_function: TaskFunction | None
    executor: Executor
    stagger: StaggerHook
    signal_delay_s: int
    max_submitted: int | None
    dry_run: bool
    snapshot: bool
    resubmit_failed: bool
    submitit_options: SubmititOptions
    sweep_name: str | None
    metrics: TrainingMetricsConfig

    @property
    def relaunch(self) -> Relaunch: ...

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]: ...

    def __call__(
        self, sweep_overrides: list[str], job_dir_key: str, job_num: int, job_id: str,
        singleton_state: object,  # Hydra's Singleton.get_state()
        config: DictConfig | None = None,
    ) -> JobReturn: ...


@runtime_checkable
class Sweeper(Protocol):
    """ttlaunch's Hydra sweeper (TTLaunchSweeper: Hydra's BasicSweeper underneath)."""

    config: DictConfig | None
    hydra_context: HydraContext | None

    def split_arguments(self, overrides: list[Override], max_batch_size: int | None) -> list[list[list[str]]]: ...
