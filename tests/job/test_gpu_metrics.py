"""GPU samples: the newest sample of gpu_metrics.csv, and RESOURCE_STATUS every 5th poll.
The sampler itself runs nvidia-smi: tested where a GPU is (skipped elsewhere)."""

import shutil
import time
from pathlib import Path

import pytest

from ttlaunch.job.gpu_sampler import HEADER, gpu_sampler, latest_sample, read_latest_sample
from ttlaunch.monitor.settings import MonitorSettings
from ttlaunch.monitor.sweep_monitor import Monitor
from ttlaunch.records.jobs_file import JobRecord
from ttlaunch.records.ledger import Ledger

from recorded import TWO_GPU_SAMPLES


def test_the_newest_sample_covers_every_gpu_of_its_timestamp():
    sample = latest_sample(TWO_GPU_SAMPLES)
    assert sample is not None
    assert (sample.timestamp, sample.gpus, sample.utilization_pct) == ("2026/11/23 10:00:30.000", 2, 60.0)
    assert (sample.memory_used_gb, sample.memory_total_gb) == (40.0, 160.0)


def test_unsupported_readings_are_unknown_and_an_empty_file_is_not_an_error():
    sample = latest_sample(HEADER + "\n2026/11/23 10:00:00.000, 0, [N/A], 512, 1024\n")
    assert sample is not None and (sample.utilization_pct, sample.memory_used_gb) == (None, 0.5)
    assert sample.describe() == "unknown | GPU Memory: 0.5/1.0 GB (1 GPU, 2026/11/23 10:00:00.000)"
    assert latest_sample(HEADER + "\n") is None


def test_only_the_tail_of_a_long_file_is_read(tmp_path: Path):
    path = tmp_path / "gpu_metrics.csv"
    old = "".join(f"2026/11/22 {h:02d}:{m:02d}:00.000, 0, 1, 1, 1024\n" for h in range(24) for m in range(60))
    path.write_text(HEADER + "\n" + old + "2026/11/23 10:00:00.000, 0, 77, 2048, 4096\n")
    sample = read_latest_sample(path)
    assert sample is not None and sample.utilization_pct == 77.0
    assert read_latest_sample(tmp_path / "missing.csv") is None


def test_a_running_jobs_gpu_sample_is_logged_every_fifth_poll(tmp_path: Path):
    ledger = Ledger.open(tmp_path, "demo")
    job_dir = tmp_path / "rank8"
    job_dir.mkdir()
    ledger.state.jobs["rank8"] = JobRecord(name="rank8", job_id="1", status="RUNNING", job_dir=str(job_dir))
    monitor = Monitor(ledger, MonitorSettings(poll_interval_s=1, resource_every_polls=5))
    for _ in range(5):
        monitor._resource_status()
    assert not ledger.events.path.exists(), "no samples yet: nothing said"
    (job_dir / "gpu_metrics.csv").write_text(TWO_GPU_SAMPLES)
    for _ in range(10):
        monitor._resource_status()
    log = ledger.events.path.read_text()
    assert log.count("RESOURCE_STATUS: rank8") == 2
    assert "GPU Utilization: 60% | GPU Memory: 40.0/160.0 GB (2 GPU, 2026/11/23 10:00:30.000)" in log


@pytest.mark.gpu
@pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="needs a node with nvidia-smi")
def test_the_sampler_samples_real_gpus_and_stops_with_the_block(tmp_path: Path):
    import subprocess

    with gpu_sampler(tmp_path, interval_s=1) as path:
        time.sleep(3.5)
    assert path is not None
    size = path.stat().st_size
    sample = read_latest_sample(path)
    assert sample is not None and sample.gpus >= 1 and sample.memory_total_gb > 1
    lines = path.read_text().splitlines()
    assert lines[0] == HEADER and len(lines) >= 1 + 3 * sample.gpus
    running = subprocess.run(["pgrep", "-f", "nvidia-smi --query-gpu"], capture_output=True, text=True).stdout
    assert running.strip() == "", "the sampler stops with the block"
    assert path.stat().st_size == size, "no sampling after the block"


def test_without_nvidia_smi_nothing_is_sampled(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with gpu_sampler(tmp_path) as path:
        pass
    assert path is None and not (tmp_path / "gpu_metrics.csv").exists()


def test_a_job_on_two_nodes_reports_the_gpus_of_both(tmp_path: Path):
    from ttlaunch.job.gpu_sampler import read_job_sample, samples_path

    samples_path(tmp_path, 0).write_text(TWO_GPU_SAMPLES)  # 95% and 25% at 10:00:30
    samples_path(tmp_path, 1).write_text(HEADER + "\n2026/11/23 10:00:31.000, 0, [N/A], 1024, 81920\n")
    sample = read_job_sample(tmp_path)
    assert (sample.gpus, sample.utilization_pct, sample.timestamp) == (3, 60.0, "2026/11/23 10:00:31.000")
    assert (sample.memory_used_gb, sample.memory_total_gb) == (41.0, 240.0)
    assert read_job_sample(tmp_path / "nothing") is None
