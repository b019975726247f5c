"""The monitor's settings: one typed definition, with its defaults.

Hydra's ConfigStore holds it as `hydra.callbacks.monitor` (the plugin's config module adds the
callback's target), so `hydra.callbacks.monitor.<setting>=...` is typed on the command line;
`ttlaunch status` builds the same settings from its flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

# Default poll intervals: SLURM is shared by everyone, local jobs are children of ours.
SLURM_POLL_INTERVAL_S = 60.0
LOCAL_POLL_INTERVAL_S = 2.0


@dataclass
class MonitorSettings:
    # Seconds between polls; None: 60 on SLURM, 2 for local jobs.
    poll_interval_s: Optional[float] = None
    # Alert after this many polls in a row that SLURM did not answer (polling goes on).
    alert_after_failures: int = 3
    # Every this many polls of a running job, a RESOURCE_STATUS from its gpu_metrics.csv.
    resource_every_polls: int = 5
    # When seff has no data yet after a job ended, ask again after this long (once).
    metrics_retry_s: float = 30.0
    # auto: a live table when stdout is a terminal, plain log lines otherwise; on; off.
    live: str = "auto"
    # SLURM: between polls, look this often (seconds) for jobs that wrote their result as
    # they ended, and confirm their end with one sacct; 0: learn of ends at polls only.
    end_check_s: float = 3.0
    # Submit, then return at once (SLURM only); `ttlaunch status <sweep dir> --follow` monitors later.
    detach: bool = False

    def interval_for(self, executor: str) -> float:
        """Seconds between polls of a sweep run by this executor (local or slurm)."""
        if self.poll_interval_s:
            return self.poll_interval_s
        return SLURM_POLL_INTERVAL_S if executor == "slurm" else LOCAL_POLL_INTERVAL_S
