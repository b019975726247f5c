"""ttlaunch's Hydra sweeper: one job per fine-tuned run of the experiment, times any
command-line sweep. Thin; the work is in ttlaunch.submit.orchestration (imported lazily)."""

from typing import Any, List

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper


class TTLaunchSweeper(BasicSweeper):
    def __init__(self) -> None:
        super().__init__(max_batch_size=None)

    def sweep(self, arguments: List[str]) -> Any:
        from ttlaunch.errors import InputError
        from ttlaunch.submit.orchestration import run_sweep

        from .launcher import TTLaunchLauncher

        if not isinstance(self.launcher, TTLaunchLauncher):
            # Any other launcher (Hydra's basic one, say) would train in this very process.
            choice = self.config.hydra.runtime.choices.get("compute")
            raise InputError(
                f"compute={choice}", "hydra/launcher", "the preset must choose ttlaunch_local or ttlaunch_slurm"
            )
        return run_sweep(self, arguments)
