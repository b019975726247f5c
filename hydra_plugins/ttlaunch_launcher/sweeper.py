"""ttlaunch's Hydra sweeper: one job per fine-tuned run of the experiment, times any
command-line sweep. Thin; the work is in ttlaunch.submit.own_app_launch (imported lazily)."""

from typing import List, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.utils import JobReturn

from .launcher import TTLaunchLauncher


class TTLaunchSweeper(BasicSweeper):
    def __init__(self) -> None:
        super().__init__(max_batch_size=None)

    def sweep(self, arguments: List[str]) -> List[Sequence[JobReturn]]:
        # Hydra imports this plugin at every start of any app: ttlaunch's code loads when used.
        from ttlaunch.base.errors import InputError
        from ttlaunch.submit.own_app_launch import run_sweep

        if not isinstance(self.launcher, TTLaunchLauncher):
            # Any other launcher (Hydra's basic one, say) would train in this very process.
            assert self.config is not None  # Hydra sets it before it sweeps
            choice = self.config.hydra.runtime.choices.get("compute")
            raise InputError(
                f"compute={choice}", "hydra/launcher", "the preset must choose ttlaunch_local or ttlaunch_slurm"
            )
        return run_sweep(self, self.launcher, arguments)
