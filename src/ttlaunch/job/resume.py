"""Where a run stands at job start, from what is on disk: train from the beginning, resume
from the newest checkpoint, or nothing left to train.

Decided from disk, not from the scheduler, so it holds after a requeue by submitit, an
external `scontrol requeue`, a node failure or a re-launch alike.

torchtune (0.6.1) saves `epoch_N/adapter_model.pt` after every epoch, and after every epoch
but the last also `recipe_state/recipe_state.pt` (epochs run, total epochs, optimizer). It
never removes that recipe state: resuming a finished run would silently train its last
epoch again and overwrite it, so a finished run must be recognised as finished.
"""

from __future__ import annotations

import enum
import operator
from dataclasses import dataclass
from pathlib import Path

from ttlaunch.records.checkpoints import adapter_file, epoch_dirs, epoch_of

RECIPE_STATE = Path("recipe_state") / "recipe_state.pt"
ADAPTER = "adapter_model.pt"  # what torchtune's resume loads


class ResumeAction(enum.Enum):
    FRESH = "fresh"
    RESUME = "resume"
    FINISHED = "finished"


@dataclass(frozen=True)
class ResumeDecision:
    action: ResumeAction
    reason: str
    newest_epoch: int | None = None


def saved_epochs(output_dir: Path) -> list[int]:
    """Epochs whose adapter checkpoint is complete enough to resume from, ascending. (An
    adapter cruijff_kit's post step moved aside counts too: that step runs once the run has
    finished, which its recipe state then says.)"""
    return [epoch_of(path) for path in epoch_dirs(output_dir) if adapter_file(path, ADAPTER).is_file()]


def decide(epochs: list[int], recipe_state: tuple[int, int] | None) -> ResumeDecision:
    """From the saved epochs and the recipe state's (epochs run, total epochs), if any."""
    if not epochs:
        return ResumeDecision(ResumeAction.FRESH, "no epoch checkpoint yet")
    newest = epochs[-1]
    if recipe_state is None:
        # Epoch checkpoints but never a recipe state: the only epoch was also the last.
        return ResumeDecision(ResumeAction.FINISHED, f"epoch_{newest} is the final epoch (no recipe state)", newest)
    epochs_run, total = recipe_state
    if epochs_run == newest + 1 and epochs_run < total:
        return ResumeDecision(ResumeAction.RESUME, f"epoch_{newest} saved; resuming at epoch {epochs_run} of {total}", newest)
    if newest + 1 >= total or epochs_run <= newest:
        # The recipe state is older than the newest epoch: that epoch was the final one.
        return ResumeDecision(ResumeAction.FINISHED, f"epoch_{newest} is the final epoch of {total}", newest)
    return ResumeDecision(
        ResumeAction.FRESH, f"recipe state (epochs run {epochs_run}) does not match epoch_{newest}: training again", newest
    )


class UnreadableRecipeState(Exception):
    """The recipe state exists but cannot be read (cut short, or not torchtune's)."""


def read_recipe_state(output_dir: Path) -> tuple[int, int] | None:
    """(epochs run, total epochs) from torchtune's recipe state; None when there is none."""
    path = output_dir / RECIPE_STATE
    if not path.is_file():
        return None
    import torch  # a torchtune job has it; only its two counters are read (memory-mapped)

    try:
        state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        epochs_run, total = operator.index(state["epochs_run"]), operator.index(state["total_epochs"])
    except Exception as err:  # whatever a damaged pickle raises, or counters that are not whole numbers
        raise UnreadableRecipeState(f"{path}: {type(err).__name__}: {err}") from None
    if not 0 <= epochs_run <= total:
        raise UnreadableRecipeState(f"{path}: epochs run {epochs_run} of {total} is not a count of epochs")
    return epochs_run, total


def decide_torchtune(output_dir: Path) -> ResumeDecision:
    epochs = saved_epochs(output_dir)
    try:
        recipe_state = read_recipe_state(output_dir) if epochs else None
    except UnreadableRecipeState as err:
        # Neither "resume" nor "finished" can be trusted: training again is the safe answer.
        return ResumeDecision(ResumeAction.FRESH, f"{err}: training again from the start", epochs[-1])
    return decide(epochs, recipe_state)
