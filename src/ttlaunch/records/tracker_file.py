"""A run's identity in experiment trackers (W&B, TensorBoard), kept in its job dir as
`tracker.json`, and where its tracker data lies.

The job writes the identity before its first attempt's payload starts and keeps it for
every later attempt, restart and re-launch (the job dir is the run's for good): one tracker
run per point of the sweep. A torchtune trainer's start-up hook (ttlaunch.job.trainer_hooks.
ttlaunch_tracker) adds what its W&B logger logged: the last step, the W&B run dir of each
attempt, the project.
The monitor reads both to sync offline runs and to name them in the summary.

    {"id": "3f9c0e1b2a4d5c6e", "group": "cap_4L", "name": "rank8_lr1e-5",
     "parameters": {"lora_rank": 8, "lr": 1e-05},
     "wandb": {"last_step": 40, "dirs": ["<log_dir>/wandb/offline-run-20261207_101500-3f9c0e1b2a4d5c6e"],
               "project": "capitalization", "entity": null}}
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ttlaunch.base.files import write_atomically

TRACKER_NAME = "tracker.json"
# Where W&B puts a run's dir under its root (WANDB_DIR, or a logger's log_dir): one per
# attempt, each named after the run's id.
WANDB_SUBDIR = "wandb"

Scalar = str | int | float | bool


@dataclass(frozen=True)
class TrackerRun:
    """One point's tracker run: its id (W&B's run id, the same every attempt), group and
    name, the swept parameters, and the W&B dirs its attempts wrote (as the hook recorded)."""

    id: str
    group: str
    name: str
    parameters: Mapping[str, Scalar] = field(default_factory=dict)
    wandb_dirs: tuple[str, ...] = ()
    # The W&B project and entity torchtune's logger logged to (None: no logger of ours did).
    wandb_project: str | None = None
    wandb_entity: str | None = None


def read_tracker(job_dir: Path) -> TrackerRun | None:
    """The run's tracker identity; None before its job wrote one (or for a file not ours)."""
    try:
        data = json.loads((job_dir / TRACKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        return None
    parameters = data.get("parameters")
    wandb = data.get("wandb")
    if not isinstance(wandb, dict):
        wandb = {}
    dirs, project, entity = wandb.get("dirs"), wandb.get("project"), wandb.get("entity")
    return TrackerRun(
        id=data["id"], group=str(data.get("group", "")), name=str(data.get("name", "")),
        parameters={key: value for key, value in parameters.items() if isinstance(value, (str, int, float, bool))}
        if isinstance(parameters, dict) else {},
        wandb_dirs=tuple(item for item in dirs if isinstance(item, str)) if isinstance(dirs, list) else (),
        wandb_project=project if isinstance(project, str) and project else None,
        wandb_entity=entity if isinstance(entity, str) and entity else None,
    )


def keep_tracker(job_dir: Path, group: str, name: str, parameters: Mapping[str, Scalar]) -> TrackerRun:
    """The run's identity, written when it has none: its id stays what it was (a new random
    one for a new point), the rest is this attempt's; what a hook recorded stays."""
    path = job_dir / TRACKER_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        data = {"id": secrets.token_hex(8)}  # W&B ids: letters and digits, unique in a project
    data.update(group=group, name=name, parameters=dict(parameters))
    job_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(data, indent=1) + "\n")
    found = read_tracker(job_dir)
    assert found is not None  # just written
    return found


def wandb_run_dirs(job_dir: Path, run: TrackerRun) -> list[Path]:
    """The W&B dirs of the run's attempts, oldest first: those the hook recorded (a trainer's
    log_dir) and those under the job dir (WANDB_DIR, for an app's or a command's own
    `wandb.init()`), offline or online, that are still there."""
    found = {Path(item) for item in run.wandb_dirs}
    root = job_dir / WANDB_SUBDIR
    if root.is_dir():
        found.update(root.glob(f"offline-run-*-{run.id}"))
        found.update(root.glob(f"run-*-{run.id}"))
    return sorted((path for path in found if path.is_dir()), key=_started)


def _started(path: Path) -> str:
    """A W&B run dir's start time, from its name (`[offline-]run-<YYYYMMDD_HHMMSS>-<id>`)."""
    stamp = re.search(r"\d{8}_\d{6}", path.name)
    return stamp.group() if stamp else path.name
