"""The monitor's settings: one typed definition, with its defaults.

Hydra's ConfigStore holds it as `hydra.callbacks.monitor` (the plugin's config module adds the
callback's target), so `hydra.callbacks.monitor.<setting>=...` is typed on the command line;
`ttlaunch status` builds the same settings from its flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class MonitorSettings:
    # Seconds between polls; None: the backend's (60 on SLURM, 2 for local jobs).
    poll_interval_s: Optional[float] = None
    # Alert after this many polls in a row that SLURM did not answer (polling goes on).
    alert_after_failures: int = 3
    # Every this many polls of a running job, a RESOURCE_STATUS from its gpu_metrics.csv.
    resource_every_polls: int = 5
    # When seff has no data yet after a job ended, ask again after this long (once).
    metrics_retry_s: float = 30.0
    # auto: a live table when stdout is a terminal, plain log lines otherwise; on; off.
    live: str = "auto"
    # Between polls, look this often (seconds; local jobs' processes every 0.2 s) for jobs
    # that ended (on SLURM: that wrote their result, confirmed by one sacct); 0: learn of ends
    # at polls only.
    end_check_s: float = 3.0
    # Submit, hand the sweep to a monitor job (a small SLURM job that monitors it to its end:
    # ttlaunch.submit.monitor_job), and return at once (SLURM only).
    detach: bool = False
    # The monitor job's partition (None: the compute preset's), memory and time limit; at its
    # time limit it is requeued and carries on.
    job_partition: Optional[str] = None
    job_mem_gb: float = 1.0
    job_timeout_min: int = 1440
    # Offline W&B runs synced from where the monitor runs (ttlaunch.monitor.tracker_sync): on
    # or off; at most every this many seconds, and at the end; by a monitor job (detach=true,
    # on a compute node, often without network) only when sync_from_monitor_job says so.
    tracker_sync: str = "on"
    tracker_sync_every_s: float = 300.0
    tracker_sync_from_monitor_job: bool = False
