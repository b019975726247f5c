"""Every parser of scheduler and payload output, on recorded real output damaged field by field
(zero, empty, huge, negative, wrong type, a line cut short, columns missing or extra, bytes
that are not UTF-8): it never raises anything but its own typed error, and every figure it
returns is either unknown (None) or a real one."""

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttlaunch.base.times import parse_timestamp
from ttlaunch.inputs.torchtune_configs import batch_and_accumulation
from ttlaunch.job.gpu_sampler import latest_sample
from ttlaunch.job.requeue import current_attempt, parse_requeues
from ttlaunch.scheduler.figure_readers import UnreadableOutput, count, duration_s, exit_code, number, scheduler_time, size_mb
from ttlaunch.scheduler.metrics import ComputeMetrics, entry_fields, parse_seff, parse_usage
from ttlaunch.scheduler.slurm import MAX_RESTARTS, decode, parse_sacct_rows, parse_squeue
from ttlaunch.scheduler.states import JobState

from recorded import HISTORY, SACCT, SEFF_COMPLETED, SQUEUE, TWO_GPU_SAMPLES, USAGE

REQUEUES = '[{"attempt": 1, "reason": "timeout", "at": "2026-11-23 01:00:00"}, {"attempt": 2, "reason": "preempted", "at": ""}]'
TORCHTUNE_CONFIG = "batch_size: 4\nepochs: 2\noptimizer:\n  lr: 0.0003\nseed: 0\n"

# What a scheduler puts where a figure belongs when it has none, or garbage.
DAMAGE = [
    "", " ", "0", "-1", "-5.00", "-00:00:05", "9" * 400, "1e400", "Unknown", "None", "INVALID", "UNLIMITED",
    "nan", "inf", "-inf", "1.2.3", "??K", "lots", "[N/A]", "00:00:00:00:00", "2026-13-45T99:99:99", "\ufffd\ufffd",
    "٣", "²", "0x10", "1_000", "true", "{}", "null", "|", ":", ",",
]
damage = st.sampled_from(DAMAGE) | st.text(max_size=40)


def is_figure(value) -> bool:
    """Unknown, or a real figure: a finite number no smaller than zero."""
    return value is None or (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0)


def check_squeue(text: str) -> None:
    try:
        entries = parse_squeue(text)
    except UnreadableOutput:
        return
    for job_id, entry in entries.items():
        assert job_id == entry.job_id and job_id.strip() == job_id and job_id
        assert isinstance(entry.state, JobState)
        assert entry.restarts is None or 0 <= entry.restarts <= MAX_RESTARTS


def check_sacct(text: str) -> None:
    try:
        rows = parse_sacct_rows(text)
    except UnreadableOutput:
        return
    for row in rows:
        assert isinstance(row.state, JobState) and row.job_id and "." not in row.job_id
        for moment in (row.submit, row.start, row.end):
            assert moment is None or parse_timestamp(moment) is not None
        assert is_figure(row.elapsed_s)
        assert row.exit_code is None or exit_code(row.exit_code) == row.exit_code


def check_metrics(metrics: ComputeMetrics | None) -> None:
    if metrics is None:
        return
    assert metrics.wall_time is None or duration_s(metrics.wall_time) is not None
    for value in (metrics.cpu_efficiency, metrics.memory_used_mb, metrics.memory_requested_mb):
        assert is_figure(value)
    for _, shown in entry_fields("1", metrics, 600, timed_out=False):  # the log entry is written whatever they are
        assert isinstance(shown, str)


def check_usage(text: str) -> None:
    try:
        metrics, limit_s = parse_usage(text)
    except UnreadableOutput:
        return
    check_metrics(metrics)
    assert is_figure(limit_s)


def check_seff(text: str) -> None:
    check_metrics(parse_seff(text))


def check_gpu(text: str) -> None:
    sample = latest_sample(text)
    if sample is not None:
        assert sample.gpus >= 1
        for value in (sample.utilization_pct, sample.memory_used_gb, sample.memory_total_gb):
            assert is_figure(value)
        assert isinstance(sample.describe(), str)


def check_requeues(text: str) -> None:
    for entry in parse_requeues(text):
        assert type(entry.attempt) is int and entry.attempt >= 1 and isinstance(entry.reason, str)


def check_torchtune_config(text: str) -> None:
    found = batch_and_accumulation(text.encode("utf-8", errors="surrogatepass"))
    assert found is None or all(type(value) is int and value > 0 for value in found)


# (recorded output, field separator, check) for each parser of line-and-field output.
LINE_PARSERS = {
    "squeue": (SQUEUE, "|", check_squeue),
    "sacct": (SACCT + HISTORY, "|", check_sacct),
    "sacct usage": (USAGE, "|", check_usage),
    "seff": (SEFF_COMPLETED, ": ", check_seff),
    "nvidia-smi": (TWO_GPU_SAMPLES, ",", check_gpu),
    "torchtune config": (TORCHTUNE_CONFIG, ": ", check_torchtune_config),
}


@pytest.mark.parametrize("parser", sorted(LINE_PARSERS))
def test_every_field_of_every_recorded_line_damaged_in_every_way(parser):
    recorded, separator, check = LINE_PARSERS[parser]
    lines = recorded.splitlines()
    tried = 0
    for index, line in enumerate(lines):
        fields = line.split(separator)
        for position in range(len(fields)):
            for value in DAMAGE:
                damaged = [*fields[:position], value, *fields[position + 1:]]
                check("\n".join([*lines[:index], separator.join(damaged), *lines[index + 1:]]) + "\n")
                tried += 1
    assert tried >= len(lines) * len(DAMAGE)


@st.composite
def damaged_output(draw, recorded: str, separator: str) -> str:
    """The recorded output with one to four damages of any kind, as `slurm.execute` would hand it over."""
    lines = [line.split(separator) for line in recorded.splitlines()]
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            lines.append([draw(damage)])
        row = draw(st.integers(0, len(lines) - 1))
        fields = lines[row]
        kind = draw(st.sampled_from(["field", "drop field", "extra field", "cut line", "drop line", "extra line", "repeat line"]))
        if kind == "field":
            fields[draw(st.integers(0, len(fields) - 1))] = draw(damage)
        elif kind == "drop field" and len(fields) > 1:
            del fields[draw(st.integers(0, len(fields) - 1))]
        elif kind == "extra field":
            fields.insert(draw(st.integers(0, len(fields))), draw(damage))
        elif kind == "cut line":
            text = separator.join(fields)
            lines[row] = text[: draw(st.integers(0, len(text)))].split(separator)
        elif kind == "drop line":
            del lines[row]
        elif kind == "extra line":
            lines.insert(row, [draw(damage) for _ in range(draw(st.integers(1, 9)))])
        else:
            lines.insert(row, list(fields))
    data = "\n".join(separator.join(fields) for fields in lines).encode("utf-8", errors="surrogatepass")
    if draw(st.booleans()):  # bytes that are not UTF-8, spliced in anywhere
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    return decode(data)


def _property(parser: str):
    recorded, separator, check = LINE_PARSERS[parser]

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(damaged_output(recorded, separator))
    def prop(text: str) -> None:
        check(text)

    return prop


test_squeue_never_raises_on_damaged_output = _property("squeue")
test_sacct_never_raises_on_damaged_output = _property("sacct")
test_sacct_usage_never_raises_on_damaged_output = _property("sacct usage")
test_seff_never_raises_on_damaged_output = _property("seff")
test_nvidia_smi_samples_never_raise_when_damaged = _property("nvidia-smi")
test_a_damaged_torchtune_config_has_no_batch_size_rather_than_an_error = _property("torchtune config")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(decode)))
def test_any_text_at_all(text: str):
    for check in (check_squeue, check_sacct, check_usage, check_seff, check_gpu, check_requeues, check_torchtune_config):
        check(text)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_damaged_requeues_file_keeps_what_is_readable(data):
    entries = json.loads(REQUEUES)
    entry = data.draw(st.sampled_from(entries))
    key = data.draw(st.sampled_from(["attempt", "reason", "at", "extra"]))
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=5,
    )
    entry[key] = data.draw(json_values)
    text = json.dumps(entries)
    cut = data.draw(st.integers(0, len(text)))
    check_requeues(text)
    check_requeues(text[:cut])  # a file cut short: no entries, no error
    intact = [other for other in entries if other is not entry]
    assert [e.attempt for e in parse_requeues(json.dumps(intact))] == [e["attempt"] for e in intact]


@given(st.text(max_size=30))
def test_slurms_restart_count_in_the_job_is_always_an_attempt(text):
    assert current_attempt({"SLURM_RESTART_COUNT": text}) >= 1


@given(damage)
def test_every_figure_reader_returns_a_figure_or_unknown(text):
    for reader in (number, duration_s, size_mb):
        assert is_figure(reader(text))
    assert count(text, 10) is None or 0 <= count(text, 10) <= 10
    assert scheduler_time(text) is None or parse_timestamp(scheduler_time(text)) is not None
    assert exit_code(text) is None or exit_code(text) == text.strip()


def test_what_the_reported_incident_gave_is_unknown_not_an_error():
    """sacct reporting AllocCPUS 0 for a job that just ended (issue: ZeroDivisionError)."""
    metrics, limit_s = parse_usage("28|00:00:06|00:10:00|00:06.238|0|500M|\n28.batch|00:00:06||00:06.238|0||219636K\n")
    assert metrics.cpu_efficiency is None, "0 CPUs: the efficiency is unknown"
    assert (metrics.wall_time, limit_s, metrics.memory_requested_mb) == ("00:00:06", 600, 500.0), "the rest is kept"
    with pytest.raises(UnreadableOutput):
        parse_usage("this|is not|what was asked for\n")
    assert parse_squeue("Welcome to the cluster!\n5|RUNNING|0|r\n")["5"].restarts == 0, "a banner is not data"
    assert parse_squeue("5|RUNNING|99999999|r\n")["5"].restarts is None, "beyond SLURM's 16 bits: unknown"
