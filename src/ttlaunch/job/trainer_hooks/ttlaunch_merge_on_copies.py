"""The `merge_on_copies` hook (see the package's docstring for why): once
`torchtune.modules.peft` is imported, and if torchtune's version is one that needs it, its
`get_merged_lora_ckpt` adds into copies of the base weights, so a checkpoint save leaves the
model being trained as it was, and the merged weights it writes are base + (alpha/rank)·B·A
of that epoch's adapter. It says so once, on stderr (the job's log).

The standard library only; it does nothing in a trainer that never imports torchtune's LoRA code.
"""

from __future__ import annotations

import functools
import re
import sys
from types import ModuleType
from typing import Callable, Dict, Protocol

PEFT = "torchtune.modules.peft"
# Where torchtune defines the merge, and the package recipes import it from.
MERGE_MODULES = (f"{PEFT}._utils", PEFT)
MERGE = "get_merged_lora_ckpt"
# Every release merges into the tensors it is given, 0.6.1 being the last (torchtune is no
# longer maintained); a later one would be left as it is, and the log says so.
LAST_AFFECTED = (0, 6, 1)
# A LoRA module's A matrix; its base weight, `<module>.weight`, is what the merge adds into.
LORA_A = ".lora_a.weight"


class Tensor(Protocol):
    """What the merge's copies are made of (torch's tensors; torch is the trainer's to import)."""

    def clone(self) -> Tensor: ...


Merge = Callable[[Dict[str, Tensor], int, float], Dict[str, Tensor]]


def affected(version: str) -> bool:
    """Whether a torchtune version ('0.6.1+cpu', '0.5.0') needs its merge given copies."""
    release = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    return release is not None and tuple(int(part or 0) for part in release.groups()) <= LAST_AFFECTED


def merge_on_copies(merge: Merge) -> Merge:
    """`merge`, given copies of the base weights it adds into; the rest of the state dict (the
    LoRA matrices, only read) as it was. Costs one copy of the adapted weights per save."""

    @functools.wraps(merge)
    def merged(state_dict: Dict[str, Tensor], rank: int, alpha: float) -> Dict[str, Tensor]:
        copied = dict(state_dict)
        for key in state_dict:
            base = key[: -len(LORA_A)] + ".weight" if key.endswith(LORA_A) else None
            if base in copied:
                copied[base] = copied[base].clone()
        return merge(copied, rank, alpha)

    return merged


def merge_line(version: str) -> str:
    """Give torchtune's merge copies where its version needs it (its modules are imported);
    the line for the job's log."""
    if not affected(version):
        last = ".".join(map(str, LAST_AFFECTED))
        return (
            f"ttlaunch: torchtune {version} is not a release to {last} (whose LoRA merge needs copies on the CPU): "
            "its merge is left as it is"
        )
    original = getattr(sys.modules[PEFT], MERGE)
    replacement = merge_on_copies(original)
    for name in MERGE_MODULES:
        if getattr(sys.modules[name], MERGE, None) is original:
            setattr(sys.modules[name], MERGE, replacement)
    return (
        f"ttlaunch: torchtune {version} without GPUs: each checkpoint merges LoRA into copies of the base weights, "
        "leaving the model being trained as it is (torchtune's merge would add into its live weights on the CPU)"
    )


# The module whose import the hook waits for (ttlaunch.job.trainer_hooks.sitecustomize).
TARGET = PEFT


def patch(module: ModuleType) -> None:
    version = str(getattr(sys.modules.get("torchtune"), "__version__", "unknown"))
    print(merge_line(version), file=sys.stderr, flush=True)
