"""The micro-batch a run trains with, and the smaller one it restarts with after its GPU ran
out of memory: the gradient accumulation grows by as much as the micro-batch shrinks, so the
effective batch, and with it the experiment, stays the same."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ttlaunch.inputs.torchtune_configs import SAVED_CONFIG_NAME, batch_and_accumulation
from ttlaunch.job.job_plan import load_plan
from ttlaunch.records.jobs_file import JobRecord

# torchtune's keys: the micro-batch and the steps accumulated before each optimizer step.
TORCHTUNE_BATCH_KEYS = ("batch_size", "gradient_accumulation_steps")


@dataclass(frozen=True)
class BatchChange:
    keys: tuple[str, str]  # the micro-batch's key, the accumulation's
    size: int
    accumulation: int
    new_size: int
    new_accumulation: int

    @property
    def overrides(self) -> list[str]:
        """The launch overrides that give the restarted job's payload the new values, last."""
        size_key, accumulation_key = self.keys
        # Quoted: Hydra's override grammar takes no bare `=` inside a list.
        return [f"++payload.extra_overrides=['{size_key}={self.new_size}','{accumulation_key}={self.new_accumulation}']"]

    @property
    def text(self) -> str:
        return f"batch {self.size}→{self.new_size} × accum {self.accumulation}→{self.new_accumulation}"

    def entry(self) -> dict[str, object]:
        """What the run's restart records (jobs.json): the next restart starts from the new values."""
        return {"batch": [self.size, self.new_size], "accumulation": [self.accumulation, self.new_accumulation],
                "batch_keys": list(self.keys)}


def smaller_batch(record: JobRecord, command_keys: Sequence[str] = ()) -> BatchChange | str:
    """The change that keeps the effective batch with a smaller micro-batch (the largest one
    that divides it), or why there is none."""
    running = _running_batch(record, command_keys)
    if running is None:
        why = "declare the command's keys in payload.batch_keys" if not command_keys else "its keys are not among its arguments"
        return f"its micro-batch size is not known ({why})"
    keys, size, accumulation = running
    if size < 2:
        return f"its micro-batch is {size} already"
    new_size = max(divisor for divisor in range(1, size) if size % divisor == 0)
    return BatchChange(keys, size, accumulation, new_size, accumulation * (size // new_size))


def _running_batch(record: JobRecord, command_keys: Sequence[str]) -> tuple[tuple[str, str], int, int] | None:
    """Keys, micro-batch and accumulation of the job's last attempt: its newest restart's
    values, else torchtune's saved config, else the command's own `key=value` arguments."""
    for restart in reversed(record.restarts):
        if "batch" in restart:
            size_key, accumulation_key = restart["batch_keys"]
            return (size_key, accumulation_key), int(restart["batch"][1]), int(restart["accumulation"][1])
    if record.output_dir:
        try:
            saved = batch_and_accumulation((Path(record.output_dir) / SAVED_CONFIG_NAME).read_bytes())
        except OSError:
            saved = None
        if saved is not None:
            return TORCHTUNE_BATCH_KEYS, *saved
    plan = load_plan(Path(record.job_dir)) if record.job_dir and len(command_keys) == 2 else None
    if plan is None:
        return None
    values = dict(item.split("=", 1) for item in plan.command.argv if "=" in item)
    size, accumulation = values.get(command_keys[0], ""), values.get(command_keys[1], "1")
    if not (size.isdigit() and accumulation.isdigit()):
        return None
    return (command_keys[0], command_keys[1]), int(size), int(accumulation)
