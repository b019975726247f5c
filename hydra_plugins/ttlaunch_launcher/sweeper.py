"""ttlaunch's Hydra sweeper: one job per fine-tuned run of the experiment, times any
command-line sweep. Thin; the work is in ttlaunch.submit.orchestration (imported lazily)."""

from typing import Any, List

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper


class TTLaunchSweeper(BasicSweeper):
    def __init__(self) -> None:
        super().__init__(max_batch_size=None)

    def sweep(self, arguments: List[str]) -> Any:
        from ttlaunch.submit.orchestration import run_sweep

        return run_sweep(self, arguments)
