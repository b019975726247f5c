"""torchtune's checkpoints in a run's output dir: one `epoch_N/` dir per saved epoch. Read
where a job decides how to resume, and where the monitor lists and validates them."""

from __future__ import annotations

import re
from pathlib import Path

_EPOCH_DIR = re.compile(r"epoch_(\d+)")


def epoch_dirs(output_dir: Path) -> list[Path]:
    """The epoch_N/ dirs, in epoch order (epoch_10 after epoch_9)."""
    found = [path for path in output_dir.glob("epoch_*") if path.is_dir() and _EPOCH_DIR.fullmatch(path.name)]
    return sorted(found, key=epoch_of)


def epoch_of(epoch_dir: Path) -> int:
    """N of an epoch_N/ dir."""
    match = _EPOCH_DIR.fullmatch(epoch_dir.name)
    if match is None:
        raise ValueError(f"{epoch_dir} is not an epoch_N dir")
    return int(match.group(1))


# A LoRA adapter's files in an epoch dir, beside the merged weights unless the run saved the
# adapter only.
ADAPTER_FILES = frozenset({"adapter_config.json", "adapter_model.safetensors", "adapter_model.pt", "adapter_model.bin"})
_WEIGHTS = (".safetensors", ".bin")
# Where cruijff_kit's post step moves them when the run saved merged weights too (so that
# transformers loads those, not the adapter).
STASHED_ADAPTER_DIR = "adapter_weights"


def adapter_file(epoch_dir: Path, name: str) -> Path:
    """Where an epoch's adapter file `name` is: in the epoch dir as torchtune saves it, or in
    STASHED_ADAPTER_DIR once cruijff_kit's post step moved it there."""
    stashed = epoch_dir / STASHED_ADAPTER_DIR / name
    return stashed if stashed.is_file() else epoch_dir / name


def loadable(checkpoint: Path, view: Path) -> Path:
    """Where transformers loads `checkpoint` as it was saved. An epoch dir with merged weights
    beside its adapter's files would be taken for the adapter alone once peft is installed
    (its adapter_config.json names no base model): it is loaded through `view`, links to
    its files but the adapter's. An adapter-only dir (or any other) is loaded as it is."""
    names = {path.name for path in checkpoint.iterdir()} if checkpoint.is_dir() else set()
    merged = any(name.endswith(_WEIGHTS) and name not in ADAPTER_FILES for name in names)
    if not merged or "adapter_config.json" not in names:
        return checkpoint
    view.mkdir(parents=True, exist_ok=True)
    for name in sorted(names - ADAPTER_FILES):
        if not (view / name).is_symlink():
            (view / name).symlink_to(checkpoint / name)
    return view
