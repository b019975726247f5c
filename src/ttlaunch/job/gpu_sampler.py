"""GPU samples of a running job: `gpu_metrics.csv` in its job dir.

In the job, where the node has `nvidia-smi`, one nvidia-smi process samples every GPU the
job sees every 30 s (its own `-l` loop, so nothing in Python has to wake up) and is stopped
with the job. The monitor reads the newest sample for RESOURCE_STATUS.
"""

from __future__ import annotations

import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ttlaunch.scheduler.figure_readers import number, shown

GPU_METRICS_NAME = "gpu_metrics.csv"
SAMPLE_INTERVAL_S = 30
HEADER = "timestamp,gpu,utilization_pct,memory_used_mib,memory_total_mib"
_QUERY = "timestamp,index,utilization.gpu,memory.used,memory.total"
# The newest sample of up to dozens of GPUs fits in this tail of the file.
_TAIL_BYTES = 16384


def samples_path(job_dir: Path, task: int) -> Path:
    """Where a task samples its node's GPUs: gpu_metrics.csv for task 0 (one task per node),
    gpu_metrics.task<N>.csv for the others."""
    return job_dir / (GPU_METRICS_NAME if task == 0 else f"gpu_metrics.task{task}.csv")


@contextmanager
def gpu_sampler(job_dir: Path, task: int = 0, interval_s: int = SAMPLE_INTERVAL_S) -> Iterator[Path | None]:
    """Sample while the block runs; the csv path, or None on a node without nvidia-smi."""
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi is None:
        yield None
        return
    path = samples_path(job_dir, task)
    fresh = not path.exists() or path.stat().st_size == 0
    with path.open("a", encoding="utf-8") as stream:
        if fresh:  # a requeued attempt appends to the same file
            stream.write(HEADER + "\n")
            stream.flush()
        sampler = subprocess.Popen(
            [nvidia_smi, f"--query-gpu={_QUERY}", "--format=csv,noheader,nounits", "-l", str(interval_s)],
            stdout=stream, stderr=subprocess.DEVNULL,
        )
        try:
            yield path
        finally:
            sampler.terminate()
            try:
                sampler.wait(timeout=5)
            except subprocess.TimeoutExpired:
                sampler.kill()
                sampler.wait()


@dataclass(frozen=True)
class GpuSample:
    """The newest sample; a figure no GPU reported readably ("[N/A]", garbage) is None."""

    timestamp: str
    gpus: int
    utilization_pct: float | None  # mean over the job's GPUs that reported it
    memory_used_gb: float | None  # summed over the job's GPUs that reported it
    memory_total_gb: float | None

    def describe(self) -> str:
        """`X% | GPU Memory: used/total GB (n GPU, time)`, `unknown` for a figure not reported."""
        used, total = (shown(value, ".1f") for value in (self.memory_used_gb, self.memory_total_gb))
        return f"{shown(self.utilization_pct, '.0f', '%')} | GPU Memory: {used}/{total} GB ({self.gpus} GPU, {self.timestamp})"


def _known(values: list[float | None]) -> list[float]:
    return [value for value in values if value is not None]


def _newest_rows(text: str) -> list[list[str]]:
    """The rows of gpu_metrics.csv text that share its last timestamp: one per GPU."""
    rows = [
        [cell.strip() for cell in line.split(",")] for line in text.splitlines() if line.count(",") == 4
    ]
    rows = [row for row in rows if row[0] and row[0] != "timestamp"]
    return [row for row in rows if row[0] == rows[-1][0]] if rows else []


def _sample(rows: list[list[str]]) -> GpuSample | None:
    """One sample of these GPUs' rows (of one node, or of every node of a job)."""
    if not rows:
        return None
    utilization = _known([number(row[2]) for row in rows])
    used = _known([number(row[3]) for row in rows])
    total = _known([number(row[4]) for row in rows])
    return GpuSample(
        timestamp=max(row[0] for row in rows),
        gpus=len(rows),
        utilization_pct=sum(utilization) / len(utilization) if utilization else None,
        memory_used_gb=sum(used) / 1024 if used else None,
        memory_total_gb=sum(total) / 1024 if total else None,
    )


def latest_sample(text: str) -> GpuSample | None:
    """The newest sample (the rows sharing the last timestamp) of gpu_metrics.csv text."""
    return _sample(_newest_rows(text))


def read_job_sample(job_dir: Path) -> GpuSample | None:
    """The newest sample of every node of a job, as one: its GPUs counted together, the mean
    utilisation of those that report it, memory summed; None when no node sampled (yet)."""
    return _sample([row for path in sorted(job_dir.glob("gpu_metrics*.csv")) for row in _newest_rows(_tail(path))])


def read_latest_sample(path: Path) -> GpuSample | None:
    """The newest sample in a job's gpu_metrics.csv; None when there is none (yet)."""
    return latest_sample(_tail(path))


def _tail(path: Path) -> str:
    """The end of a samples file, whole lines only ("" when it cannot be read)."""
    try:
        with path.open("rb") as stream:
            size = stream.seek(0, 2)
            stream.seek(max(0, size - _TAIL_BYTES))
            tail = stream.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return tail.split("\n", 1)[-1] if size > _TAIL_BYTES else tail  # the first line of the tail may be cut
