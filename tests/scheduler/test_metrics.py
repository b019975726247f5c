"""Compute metrics from seff and sacct, on output recorded from the test cluster."""

from ttlaunch.scheduler.figure_readers import duration_s
from ttlaunch.scheduler.metrics import entry_fields, parse_seff, parse_usage, parse_usages

from recorded import SEFF_ACCOUNTING_LAGS, SEFF_COMPLETED, SEFF_NO_SAMPLES, USAGE


def test_seff_report():
    metrics = parse_seff(SEFF_COMPLETED)
    assert metrics.wall_time == "00:00:06" and metrics.cpu_efficiency == 50.0
    assert (metrics.memory_used_mb, metrics.memory_requested_mb) == (214.49, 500.0)
    no_samples = parse_seff(SEFF_NO_SAMPLES)
    assert no_samples.memory_used_mb == 0.0 and no_samples.memory_requested_mb == 1000.0
    assert no_samples.cpu_efficiency is None  # a share of no core-walltime


def test_a_request_accounting_does_not_have_yet_is_unknown_not_zero():
    lagging = parse_seff(SEFF_ACCOUNTING_LAGS)
    assert lagging.memory_requested_mb is None and lagging.cpu_efficiency is None
    assert lagging.filled_from(parse_usage(USAGE)[0]).memory_requested_mb == 500.0


def test_seff_without_data_is_none():
    assert parse_seff("Job not found.\n") is None
    assert parse_seff("") is None


def test_the_same_figures_from_sacct():
    metrics, limit_s = parse_usage(USAGE)
    assert limit_s == 600
    assert metrics.source == "sacct" and metrics.wall_time == "00:00:06"
    assert metrics.cpu_efficiency == 50.0  # whole CPU seconds over 6 s x 2 CPUs, as seff says for this job
    assert round(metrics.memory_used_mb, 2) == 214.49 and metrics.memory_requested_mb == 500.0


def test_several_jobs_usage_in_one_answer():
    other = "29|00:01:00|01:00:00|00:30.000|1|1G|\n29.batch|00:01:00||00:30.000|1||512M\n29.extern|00:01:00||00:00:00|1||0\n"
    usages = parse_usages(USAGE + other)
    assert sorted(usages) == ["28", "29"]
    assert usages["28"] == parse_usage(USAGE)
    metrics, limit_s = usages["29"]
    assert limit_s == 3600 and metrics.cpu_efficiency == 50.0 and metrics.memory_used_mb == 512.0
    assert parse_usages("") == {}


def test_durations():
    assert duration_s("1-02:03:04") == 93784
    assert duration_s("00:06.238") == 6
    assert duration_s("UNLIMITED") is None


def test_the_compute_metrics_entry_and_exceeded_after_timeout():
    metrics = parse_seff(SEFF_COMPLETED)
    fields = dict(entry_fields("28", metrics, 600, timed_out=False))
    assert fields["GPU Time"] == "00:00:06 / 00:10:00 (1.0%)"
    assert fields["Memory"] == "214.49 MB / 500.00 MB" and fields["CPU Efficiency"] == "50.00%"
    timed_out = dict(entry_fields("28", metrics, 60, timed_out=True))
    assert timed_out["GPU Time"] == "00:00:06 / 00:01:00 (**EXCEEDED**)"
    assert "timeout_min" in timed_out["Warning"]
