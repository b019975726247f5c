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
