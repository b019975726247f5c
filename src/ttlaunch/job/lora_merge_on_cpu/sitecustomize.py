"""Run by Python at start-up in a torchtune trainer that ttlaunch starts without GPUs (the
package's docstring says why): once `torchtune.modules.peft` is imported, and if torchtune's
version is one that needs it, its `get_merged_lora_ckpt` adds into copies of the base weights,
so a checkpoint save leaves the model being trained as it was, and the merged weights it
writes are base + (alpha/rank)·B·A of that epoch's adapter. It says so once, on stderr (the
job's log).

Self-contained (the standard library only): it runs in whatever Python the trainer runs in (a
scaffold's batch script may activate an environment without ttlaunch), and does nothing in
one that never imports torchtune's LoRA code. A sitecustomize it hides on sys.path (a site's,
an environment's) still runs, after it.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
from types import ModuleType
from typing import Callable, Dict, Protocol, Sequence

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


def patch(version: str) -> str:
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


class PatchAfterImport(importlib.abc.MetaPathFinder):
    """Finds `torchtune.modules.peft` as the other finders would, and patches it once it has run."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != PEFT:
            return None
        sys.meta_path.remove(self)  # once; the lookup below is then the ordinary one
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            load(module)
            version = str(getattr(sys.modules.get("torchtune"), "__version__", "unknown"))
            print(patch(version), file=sys.stderr, flush=True)

        setattr(spec.loader, "exec_module", exec_module)
        return spec


def run_hidden_sitecustomize() -> None:
    """The sitecustomize this one hides on sys.path, run as Python would have run it."""
    here = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
    rest = [entry for entry in sys.path if os.path.realpath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


if __name__ == "sitecustomize":  # at start-up; imported under its package name (tests), it only defines
    sys.meta_path.insert(0, PatchAfterImport())
    run_hidden_sitecustomize()
