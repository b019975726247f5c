"""Compute metrics of an ended job: from `seff`, or the same figures from `sacct` where seff
is missing or has no data. Pure: text in, ComputeMetrics out; a figure the text does not
give readably (zero CPUs, an empty CPU time, memory nobody can read) is unknown (None).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ttlaunch.scheduler.figure_readers import UNKNOWN, UnreadableOutput, clock, count, duration_s, number, shown, size_mb

USAGE_FIELDS = ("JobID", "Elapsed", "Timelimit", "TotalCPU", "AllocCPUS", "ReqMem", "MaxRSS")
# More CPUs than any node has: a count beyond it is garbage.
_MAX_CPUS = 1 << 20


@dataclass(frozen=True)
class ComputeMetrics:
    """An ended job's usage; None where the scheduler gave no readable figure."""

    source: str  # "seff", "sacct", or "seff, sacct" when sacct filled figures seff lacked
    wall_time: str | None  # HH:MM:SS
    cpu_efficiency: float | None  # percent
    memory_used_mb: float | None
    memory_requested_mb: float | None

    def as_record(self) -> dict[str, object]:
        return asdict(self)

    def filled_from(self, other: "ComputeMetrics | None") -> "ComputeMetrics":
        """These figures, each unknown one taken from `other` where it knows it."""
        if other is None:
            return self
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "source"}
        filled = {name: getattr(other, name) for name, value in values.items() if value is None and getattr(other, name) is not None}
        if not filled:
            return self
        return ComputeMetrics(source=f"{self.source}, {other.source}", **{**values, **filled})


def _wall(seconds_run: int | None) -> str | None:
    return clock(seconds_run) if seconds_run is not None else None


# An ended job's compute metrics from accounting, and its time limit in seconds (None: unknown).
Usage = tuple[ComputeMetrics | None, int | None]


def parse_seff(text: str) -> ComputeMetrics | None:
    """seff's report, or None when it has no data yet (job unknown to accounting)."""
    report = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    wall = report.get("Job Wall-clock time")
    if wall is None:
        return None
    # "50.00% of 00:00:12 core-walltime", "214.49 MB (estimated maximum)", "42.90% of 500.00 MB"
    cpu, _, core_walltime = report.get("CPU Efficiency", "").partition("% of ")
    used = report.get("Memory Utilized", "").split("(", 1)[0]
    requested = size_mb(report.get("Memory Efficiency", "").partition(" of ")[2].split("(", 1)[0])
    return ComputeMetrics(
        source="seff",
        wall_time=_wall(duration_s(wall)),
        # seff says 0.00% of no core-walltime (a job of under a second); sacct's figure has it unknown too.
        cpu_efficiency=number(cpu) if duration_s(core_walltime.split(" ", 1)[0]) else None,
        memory_used_mb=size_mb(used),
        # Every job asks for memory: 0 is accounting that has not recorded the request yet
        # (the moment after a job ends), left for sacct to fill.
        memory_requested_mb=requested or None,
    )


def parse_usage(text: str) -> Usage:
    """`sacct -P -n -j ID --format=<USAGE_FIELDS>` (steps included) -> metrics and the time
    limit in seconds; (None, None) while accounting has no line of the job. The allocation
    line has the limit and request, steps the peak RSS."""
    lines = [line for line in text.splitlines() if "|" in line]
    rows = [dict(zip(USAGE_FIELDS, row)) for row in (line.split("|") for line in lines) if len(row) == len(USAGE_FIELDS)]
    if lines and not rows:
        raise UnreadableOutput(f"no line has the {len(USAGE_FIELDS)} fields asked for: {lines[0][:200]!r}")
    allocation = next((row for row in rows if row["JobID"].strip() and "." not in row["JobID"]), None)
    if allocation is None:
        return None, None
    elapsed = duration_s(allocation["Elapsed"])
    cpus = count(allocation["AllocCPUS"], _MAX_CPUS)
    used_cpu = duration_s(allocation["TotalCPU"])
    efficiency = None
    if elapsed and cpus and used_cpu is not None:  # an unknown or zero figure leaves it unknown
        efficiency = round(100.0 * used_cpu / (elapsed * cpus), 2)
    peaks = [size_mb(row["MaxRSS"]) for row in rows]
    metrics = ComputeMetrics(
        source="sacct",
        wall_time=_wall(elapsed),
        cpu_efficiency=efficiency,
        memory_used_mb=max((value for value in peaks if value is not None), default=None),
        # ReqMem may carry SLURM's old per-CPU / per-node suffix: 1000Mc, 4Gn.
        memory_requested_mb=size_mb(allocation["ReqMem"].strip().rstrip("nc")),
    )
    return metrics, duration_s(allocation["Timelimit"])


def parse_usages(text: str) -> dict[str, Usage]:
    """The same for several jobs in one answer: job id -> metrics and time limit (only the
    jobs accounting has lines of)."""
    groups: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "|" in line:
            groups.setdefault(line.split("|", 1)[0].strip().split(".", 1)[0], []).append(line)
    return {job_id: parse_usage("\n".join(lines)) for job_id, lines in groups.items()}


def entry_fields(job_id: str, metrics: ComputeMetrics, limit_s: int | None, timed_out: bool) -> list[tuple[str, object]]:
    """The COMPUTE_METRICS entry's keys: `GPU Time: <wall> / <limit> (<pct>%)`, or
    `(**EXCEEDED**)` after a TIMEOUT; `unknown` for each figure the scheduler did not give."""
    wall_s = duration_s(metrics.wall_time)
    limit = clock(limit_s) if limit_s else "unlimited"
    if timed_out:
        usage = "**EXCEEDED**"
    elif limit_s and wall_s is not None:
        usage = f"{100.0 * wall_s / limit_s:.1f}%"
    else:
        usage = "no limit" if not limit_s else UNKNOWN
    fields_: list[tuple[str, object]] = [
        ("Job ID", job_id),
        ("GPU Time", f"{metrics.wall_time or UNKNOWN} / {limit} ({usage})"),
        ("Memory", " / ".join(shown(value, ".2f", " MB") for value in (metrics.memory_used_mb, metrics.memory_requested_mb))),
        ("CPU Efficiency", shown(metrics.cpu_efficiency, ".2f", "%")),
        ("Source", metrics.source),
    ]
    if timed_out:
        fields_.append(("Warning", "time limit exceeded: raise compute.timeout_min for this run"))
    return fields_

