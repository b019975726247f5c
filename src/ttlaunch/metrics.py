"""Compute metrics of an ended job: from `seff`, or the same figures from `sacct` where seff
is missing or has no data. Pure: text in, ComputeMetrics out.

The event log entry follows seed 002: `GPU Time: <wall> / <limit> (<pct>%)` (or
`(**EXCEEDED**)` after a TIMEOUT), `Memory: <used> / <requested>`, `CPU Efficiency: <pct>%`.
"""

from __future__ import annotations

import csv
import re
from dataclasses import asdict, dataclass
from typing import Any

USAGE_FIELDS = ("JobID", "Elapsed", "Timelimit", "TotalCPU", "AllocCPUS", "ReqMem", "MaxRSS")
_UNITS = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0 * 1024}


@dataclass(frozen=True)
class ComputeMetrics:
    source: str  # "seff" or "sacct"
    wall_time: str  # HH:MM:SS
    cpu_efficiency: float | None  # percent
    memory_used_mb: float | None
    memory_requested_mb: float | None

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


def seconds(duration: str) -> int | None:
    """SLURM durations: [D-]HH:MM:SS, MM:SS, MM:SS.mmm; None for UNLIMITED/empty."""
    text = duration.strip()
    if not text or text.upper() in {"UNLIMITED", "INVALID", "PARTITION_LIMIT"}:
        return None
    days = 0
    if "-" in text:
        day_text, text = text.split("-", 1)
        days = int(day_text)
    parts = [float(part) for part in text.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0.0)
    hours, minutes, secs = parts
    return int(days * 86400 + hours * 3600 + minutes * 60 + secs)


def clock(total: int) -> str:
    hours, rest = divmod(total, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def _mb(text: str) -> float | None:
    """'214.49 MB', '219636K', '500M', '2G' -> megabytes."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT])?B?\s*", text)
    if not match:
        return None
    return float(match.group(1)) * _UNITS[match.group(2) or "M"]


def parse_seff(text: str) -> ComputeMetrics | None:
    """seff's report, or None when it has no data yet (job unknown to accounting)."""
    fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    wall = fields.get("Job Wall-clock time")
    if wall is None:
        return None
    cpu = re.match(r"([0-9.]+)%", fields.get("CPU Efficiency", ""))
    used = re.match(r"([0-9.]+ [KMGT]?B)", fields.get("Memory Utilized", ""))
    requested = re.search(r"of ([0-9.]+ [KMGT]?B)", fields.get("Memory Efficiency", ""))
    return ComputeMetrics(
        source="seff",
        wall_time=clock(seconds(wall) or 0),
        cpu_efficiency=float(cpu.group(1)) if cpu else None,
        memory_used_mb=_mb(used.group(1)) if used else None,
        memory_requested_mb=_mb(requested.group(1)) if requested else None,
    )


def parse_usage(text: str) -> tuple[ComputeMetrics | None, int | None]:
    """`sacct -P -n -j ID --format=<USAGE_FIELDS>` (steps included) -> metrics and the time
    limit in seconds. The allocation line has the limit and request, steps the peak RSS."""
    rows = [dict(zip(USAGE_FIELDS, row)) for row in csv.reader(text.splitlines(), delimiter="|") if len(row) == len(USAGE_FIELDS)]
    allocation = next((row for row in rows if "." not in row["JobID"]), None)
    if allocation is None:
        return None, None
    elapsed = seconds(allocation["Elapsed"]) or 0
    cpus = int(allocation["AllocCPUS"] or 1)
    used_cpu = seconds(allocation["TotalCPU"]) or 0
    peaks = [_mb(row["MaxRSS"]) for row in rows if row["MaxRSS"]]
    peak = max((value for value in peaks if value is not None), default=None)
    metrics = ComputeMetrics(
        source="sacct",
        wall_time=clock(elapsed),
        cpu_efficiency=round(100.0 * used_cpu / (elapsed * cpus), 2) if elapsed else None,
        memory_used_mb=peak,
        memory_requested_mb=_mb(allocation["ReqMem"].rstrip("nc")) if allocation["ReqMem"] else None,
    )
    return metrics, seconds(allocation["Timelimit"])


def entry_fields(job_id: str, metrics: ComputeMetrics, limit_s: int | None, timed_out: bool) -> list[tuple[str, object]]:
    """The COMPUTE_METRICS entry's keys, in seed 002's shape."""
    limit = clock(limit_s) if limit_s else "unlimited"
    if timed_out:
        usage = "**EXCEEDED**"
    elif limit_s:
        usage = f"{100.0 * (seconds(metrics.wall_time) or 0) / limit_s:.1f}%"
    else:
        usage = "no limit"
    memory = " / ".join(
        f"{value:.2f} MB" if value is not None else "?" for value in (metrics.memory_used_mb, metrics.memory_requested_mb)
    )
    fields: list[tuple[str, object]] = [
        ("Job ID", job_id),
        ("GPU Time", f"{metrics.wall_time} / {limit} ({usage})"),
        ("Memory", memory),
        ("CPU Efficiency", f"{metrics.cpu_efficiency:.2f}%" if metrics.cpu_efficiency is not None else "?"),
        ("Source", metrics.source),
    ]
    if timed_out:
        fields.append(("Warning", "time limit exceeded: raise compute.timeout_min for this run"))
    return fields
