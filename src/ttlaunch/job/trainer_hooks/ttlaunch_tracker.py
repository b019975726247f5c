"""The `tracker` hook (see the package's docstring): torchtune's W&B and TensorBoard loggers,
one tracker run per point of the sweep across every attempt, with monotone steps.

The point's identity is in `$TTLAUNCH_JOB_DIR/tracker.json` (ttlaunch.records.tracker_file
defines the file; the job writes it before the trainer starts). Once `torchtune.training.
metric_logging` is imported, its loggers are replaced by subclasses:

* WandBLogger: W&B's run id is the point's, with `resume=allow`; group (the experiment), name
  (the run), `job_type=train` unless the config sets them; the swept parameters in the W&B
  config; the config logged again on a resume without failing on a changed value
  (`allow_val_change`, torchtune #1080). Each step is logged as W&B's step, so W&B's step is
  the trainer's, counted across attempts (epoch_offset). An attempt after one that logged
  waits for its first step S before starting W&B: when an earlier attempt logged S or later
  (its work after the checkpoint is redone now), the run is rewound to S-1
  (`resume_from="<id>?_step=<S-1>"`), so the tracker keeps one curve without the redone
  stretch twice; a server that cannot rewind gets `resume=allow`.
* TensorBoardLogger: every attempt writes into the one log dir the config names (not one
  dir per attempt, as `organize_logs` would), its events starting with a session start at its
  first step (`purge_step`), so TensorBoard drops an earlier attempt's events from there; its
  steps counted across attempts too.

The hook records each attempt's W&B dir, the run's project and entity, and the last step the
W&B logger logged in the file.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
from types import ModuleType
from typing import Any, Callable, Dict, List, Mapping, Optional

# torchtune's classes and what torchtune and torch hand the loggers (the hook imports neither
# to type them), and tracker.json's JSON before it is checked.
Opaque = Any  # see above
TARGET = "torchtune.training.metric_logging"
TRACKER_NAME = "tracker.json"
JOB_DIR_VARIABLE = "TTLAUNCH_JOB_DIR"


# The tracker file's writes that failed in this trainer (the first is said).
_UNWRITABLE: List[str] = []


def _path() -> Optional[str]:
    job_dir = os.environ.get(JOB_DIR_VARIABLE)
    return os.path.join(job_dir, TRACKER_NAME) if job_dir else None


def read() -> Dict[str, Opaque]:
    path = _path()
    try:
        with open(path or "", encoding="utf-8") as stream:
            data = json.load(stream)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record(logger: str, **values: object) -> None:
    """Keep `values` under the logger's key of tracker.json (written whole, then renamed over)."""
    path = _path()
    if path is None:
        return
    data = read()
    section = data.get(logger)
    data[logger] = {**section, **values} if isinstance(section, dict) else dict(values)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{TRACKER_NAME}.", dir=os.path.dirname(path))
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=1)
        os.replace(temporary, path)
    except OSError as err:  # bookkeeping never stops the training; a later write may succeed
        if not _UNWRITABLE:
            print(f"ttlaunch: cannot write {path} (said once): {err}", file=sys.stderr, flush=True)
        _UNWRITABLE.append(path)


def last_step(logger: str) -> Optional[int]:
    """The last step an earlier attempt logged with `logger`'s key; None when none did."""
    section = read().get(logger)
    step = section.get("last_step") if isinstance(section, dict) else None
    return step if isinstance(step, int) else None


def epoch_offset(logger: object, step: int) -> int:
    """What to add to the steps a recipe logs from `step` on: torchtune's LoRA recipes to 0.6.1
    (cruijff_kit's copies too) restore their global step on a resume only when
    max_steps_per_epoch caps the epoch, else count again from 0 after the epochs done; the
    steps of those epochs are added then. The recipe is the object that holds the logger and
    has `epochs_run` and `_steps_per_epoch` (found through the garbage collector's referrers,
    once per attempt: reading the caller's frame locals would keep its progress bars alive);
    without one, 0."""
    for holder in gc.get_referrers(logger):
        # An object holds its attributes in its own __dict__, or inline (no dict made yet).
        owners = [holder]
        if isinstance(holder, dict):
            owners = [owner for owner in gc.get_referrers(holder) if getattr(owner, "__dict__", None) is holder]
        for owner in owners:
            done, per_epoch = getattr(owner, "epochs_run", None), getattr(owner, "_steps_per_epoch", None)
            if isinstance(done, int) and isinstance(per_epoch, int):
                return done * per_epoch if step <= done * per_epoch else 0
    return 0


def wandb_logger(base: Opaque, rank_of: Callable[[], int], identity: Mapping[str, Opaque]) -> Opaque:
    class WandBLogger(base):  # torchtune's class, known at run time
        """torchtune's WandBLogger, one W&B run per point of the sweep (ttlaunch)."""

        def __init__(
            self, project: str = "torchtune", entity: Optional[str] = None, group: Optional[str] = None,
            log_dir: Optional[str] = None, **kwargs: Opaque,
        ) -> None:
            kwargs.setdefault("id", identity["id"])
            kwargs.setdefault("name", identity.get("name") or None)
            kwargs.setdefault("job_type", "train")
            parameters = identity.get("parameters")
            kwargs["config"] = {**(parameters if isinstance(parameters, dict) else {}), **dict(kwargs.get("config") or {})}
            kwargs["allow_val_change"] = True
            self._ttlaunch_args = (project, entity, group or identity.get("group") or None, log_dir)
            self._ttlaunch_kwargs: Dict[str, Opaque] = kwargs
            self._ttlaunch_started = False
            self._ttlaunch_config: Opaque = None  # torchtune's DictConfig, logged once W&B starts
            self._ttlaunch_step: Optional[int] = None
            self._ttlaunch_offset: Optional[int] = None  # added to the recipe's steps (epoch_offset)
            self._ttlaunch_rank = rank_of()  # known once the trainer's processes met, not at import
            if self._ttlaunch_rank != 0 or last_step("wandb") is None:
                self._start(None)  # as torchtune starts it; on ranks above 0, that logs nothing

        def _start(self, first_step: Optional[int]) -> None:
            self._ttlaunch_started = True
            kwargs = dict(self._ttlaunch_kwargs)
            logged = last_step("wandb")
            how = "resume=allow"
            if first_step is not None and logged is not None and first_step <= logged:
                kwargs["resume_from"] = f"{kwargs['id']}?_step={first_step - 1}"
                how = f"rewound to step {first_step - 1}: steps from {first_step} are trained again"
                os.environ.pop("WANDB_RESUME", None)  # W&B takes resume or resume_from, not both
            else:
                kwargs.setdefault("resume", "allow")
            try:
                base.__init__(self, *self._ttlaunch_args, **kwargs)
            except Exception as err:  # a server without rewind: the run goes on as it is
                if "resume_from" not in kwargs:
                    raise
                print(f"ttlaunch: W&B did not rewind run {kwargs['id']} ({err}); resuming it", file=sys.stderr, flush=True)
                del kwargs["resume_from"]
                base.__init__(self, *self._ttlaunch_args, **{**kwargs, "resume": "allow"})
                how = "resume=allow"
            run = self._wandb.run
            if run is not None and self._ttlaunch_rank == 0:
                section = read().get("wandb")
                dirs = section.get("dirs") if isinstance(section, dict) else None
                record(
                    "wandb", dirs=[*(dirs if isinstance(dirs, list) else []), os.path.dirname(os.path.abspath(run.dir))],
                    project=run.project, entity=run.entity,  # where the run's evaluation scores go (the monitor)
                )
                print(f"ttlaunch: W&B run {run.id} ({how})", file=sys.stderr, flush=True)
            if self._ttlaunch_config is not None:
                base.log_config(self, self._ttlaunch_config)

        def log_config(self, config: Opaque) -> None:
            if self._ttlaunch_started:
                base.log_config(self, config)
            else:  # logged once W&B starts
                self._ttlaunch_config = config

        def log(self, name: str, data: Opaque, step: int) -> None:
            self.log_dict({name: data}, step)

        def log_dict(self, payload: Mapping[str, Opaque], step: int) -> None:
            if self._ttlaunch_offset is None:
                self._ttlaunch_offset = epoch_offset(self, step)
            step += self._ttlaunch_offset
            if not self._ttlaunch_started:
                self._start(step)
            if self._wandb.run:
                self._wandb.log({**payload, "global_step": step}, step=step)
                if self._ttlaunch_step != step:
                    self._ttlaunch_step = step
                    record("wandb", last_step=step)

        def close(self) -> None:
            if self._ttlaunch_started:
                base.close(self)

        def __del__(self) -> None:
            if getattr(self, "_ttlaunch_started", False):
                base.__del__(self)

    return WandBLogger


def tensorboard_logger(base: Opaque) -> Opaque:
    class TensorBoardLogger(base):  # torchtune's class, known at run time
        """torchtune's TensorBoardLogger, one log dir (one curve) per point of the sweep (ttlaunch)."""

        def __init__(self, log_dir: str, organize_logs: bool = True, **kwargs: Opaque) -> None:
            base.__init__(self, log_dir, organize_logs=False, **kwargs)
            self._ttlaunch_started = False
            self._ttlaunch_offset: Optional[int] = None  # added to the recipe's steps (epoch_offset)

        def log(self, name: str, data: Opaque, step: int) -> None:
            if self._ttlaunch_offset is None:
                self._ttlaunch_offset = epoch_offset(self, step)
            step += self._ttlaunch_offset
            writer: Opaque = getattr(self, "_writer")  # torch's SummaryWriter, or None on ranks above 0
            if not self._ttlaunch_started and writer is not None:
                # Each attempt's events start with a session start at its first step (purge_step):
                # TensorBoard drops what earlier attempts logged from there (the first start, none).
                from torch.utils.tensorboard import SummaryWriter  # the trainer's torch, loaded already

                writer.close()
                self._writer = SummaryWriter(log_dir=self.log_dir, purge_step=step)
            self._ttlaunch_started = True
            base.log(self, name, data, step)

    return TensorBoardLogger


def patch(module: ModuleType) -> None:
    identity = read()
    if not isinstance(identity.get("id"), str):
        print(f"ttlaunch: no tracker identity in {_path()}; torchtune's loggers are left as they are", file=sys.stderr, flush=True)
        return
    setattr(module, "WandBLogger", wandb_logger(module.WandBLogger, lambda: module.get_world_size_and_rank()[1], identity))
    setattr(module, "TensorBoardLogger", tensorboard_logger(module.TensorBoardLogger))
