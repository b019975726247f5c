"""`python -m ttlaunch.status` and the table it shares with the live view."""

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from ttlaunch.monitor.live_view import render_plain, render_rich
from ttlaunch.records.jobs_file import JobRecord, SweepState
from ttlaunch.records.ledger import Ledger

NOW = dt.datetime(2026, 11, 23, 10, 5, 30)


def sweep_state() -> SweepState:
    state = SweepState(experiment="cap", sweep_dir="/s")
    state.jobs["r8"] = JobRecord(name="r8", job_id="11", status="COMPLETED", started="2026-11-23 10:00:00", elapsed="4m 2s")
    state.jobs["r16"] = JobRecord(name="r16", job_id="12", status="RUNNING", started="2026-11-23 10:03:00")
    state.jobs["r32"] = JobRecord(name="r32", status="SUBMIT_FAILED")
    return state


def test_the_plain_table_shows_runs_states_and_elapsed_times():
    assert render_plain(sweep_state(), NOW).splitlines() == [
        "cap: 3 jobs - 1 COMPLETED, 1 RUNNING, 1 SUBMIT_FAILED",
        "Run  Status         Job ID  Started              Elapsed",
        "r8   COMPLETED      11      2026-11-23 10:00:00  4m 2s",
        "r16  RUNNING        12      2026-11-23 10:03:00  2m 30s",
        "r32  SUBMIT_FAILED  -       -                    -",
    ]


def test_the_live_table_has_the_same_rows():
    from rich.console import Console

    console = Console(width=100, record=True)
    console.print(render_rich(sweep_state(), NOW))
    text = console.export_text()
    assert "cap: 3 jobs - 1 COMPLETED, 1 RUNNING, 1 SUBMIT_FAILED" in text
    assert "r16" in text and "2m 30s" in text and "SUBMIT_FAILED" in text


def status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ttlaunch.status", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.cli
def test_status_of_a_dir_that_is_no_sweep_is_one_clear_error(tmp_path: Path):
    result = status(str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"ttlaunch: error: {tmp_path}/jobs.json: no such file; is {tmp_path} a ttlaunch sweep dir?"


@pytest.mark.cli
def test_status_of_an_ended_local_sweep_prints_its_table_and_follow_reports_the_end(tmp_path: Path):
    ledger = Ledger.open(tmp_path, "cap")
    ledger.state.jobs["r8"] = JobRecord(name="r8", job_id="11", status="COMPLETED", elapsed="4m 2s")
    ledger.save()
    shown = status(str(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == "cap: 1 jobs - 1 COMPLETED"
    assert "--follow" not in shown.stdout, "nothing left to follow"
    followed = status(str(tmp_path), "--follow", "--live", "off")
    assert followed.returncode == 0, followed.stderr
    assert "All 1 jobs completed." in followed.stdout
    assert (tmp_path / "summary.md").is_file()
    assert "ALL_COMPLETE: Monitoring finished" in (tmp_path / "run-torchtune.log").read_text()


def test_a_failed_jobs_reason_is_in_the_table():
    state = sweep_state()
    state.jobs["r64"] = JobRecord(name="r64", job_id="13", status="FAILED", error="payload exited with code 3: ValueError: lr")
    lines = render_plain(state, NOW).splitlines()
    assert lines[1].split() == ["Run", "Status", "Job", "ID", "Started", "Elapsed", "Notes"]
    assert lines[-1].startswith("r64") and lines[-1].endswith("payload exited with code 3: ValueError: lr")
    assert lines[2].endswith(" -"), "jobs without a reason say -"
