"""Resource values as users write them for sbatch (`--time=0:59:00`, `--mem=80G`), read into
a compute preset's units. Pure; None for a value sbatch would not take either.
"""

from __future__ import annotations

import math
import re

# sbatch --time: minutes, minutes:seconds, hours:minutes:seconds, days-hours,
# days-hours:minutes, days-hours:minutes:seconds.
_TIME = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", re.ASCII)
# sbatch --mem: a number with an optional unit K, M (the default), G or T.
_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)B?", re.ASCII | re.IGNORECASE)
_GB_PER_UNIT = {"K": 1 / 1024**2, "M": 1 / 1024, "": 1 / 1024, "G": 1.0, "T": 1024.0}


def flag_name(key: str) -> str:
    """An sbatch flag as sbatch names it, however a config spells it (`--no_requeue` -> no-requeue)."""
    return key.strip().lstrip("-").replace("_", "-")


def time_minutes(text: str) -> int | None:
    """sbatch's --time in whole minutes, rounded up (a limit is never cut short)."""
    match = _TIME.fullmatch(text.strip())
    if match is None:
        return None
    days, first, second, third = match.groups()
    if days is not None:  # days-hours[:minutes[:seconds]]
        seconds = int(days) * 86400 + int(first) * 3600 + int(second or 0) * 60 + int(third or 0)
    elif third is not None:  # hours:minutes:seconds
        seconds = int(first) * 3600 + int(second) * 60 + int(third)
    elif second is not None:  # minutes:seconds
        seconds = int(first) * 60 + int(second)
    else:  # minutes
        seconds = int(first) * 60
    minutes = math.ceil(seconds / 60)
    return minutes if minutes > 0 else None


def memory_gb(text: str) -> float | None:
    """sbatch's --mem in gigabytes (80G -> 80.0, 512M -> 0.5)."""
    match = _MEMORY.fullmatch(text.strip())
    if match is None:
        return None
    value = float(match.group(1)) * _GB_PER_UNIT[match.group(2).upper()]
    return value if value > 0 else None
