"""`python -m ttlaunch.status` and the table it shares with the live view."""

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from ttlaunch.monitor.live_view import render_plain, render_rich
from ttlaunch.records.jobs_file import JobRecord, SweepState, TrainingProgress
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


def test_a_failed_jobs_cause_and_an_early_stop_are_in_the_table():
    state = sweep_state()
    state.jobs["r32"] = JobRecord(name="r32", job_id="13", status="FAILED", cause="code", error="KeyError: 'labels'")
    state.stopped = "the same error ended 3 runs: KeyError: 'labels'"
    state.excluded_nodes = {"gpu07": "2999-01-01 00:00:00"}
    lines = render_plain(state, NOW).splitlines()
    assert lines[1].split() == ["Run", "Status", "Job", "ID", "Started", "Elapsed", "Cause", "Notes"]
    assert lines[4].split()[:2] == ["r32", "FAILED"] and lines[4].split()[-3:] == ["code", "KeyError:", "'labels'"]
    assert lines[-2] == "excluded nodes: gpu07 (until 2999-01-01 00:00:00)"
    assert lines[-1] == (
        "stopped: the same error ended 3 runs: KeyError: 'labels'; after a fix, the same launch command submits what was held back"
    )


def test_running_jobs_show_their_step_of_the_total_their_loss_and_the_time_left():
    state = sweep_state()
    state.jobs["r8"].training = TrainingProgress(steps_done=6, steps_total=6, loss=6.565833568572998)
    state.jobs["r16"].training = TrainingProgress(steps_done=40, steps_total=100, loss=1.25, step_time_s=2.0)
    lines = render_plain(state, NOW).splitlines()
    assert lines[1].split() == ["Run", "Status", "Job", "ID", "Started", "Elapsed", "Progress"]
    assert lines[2].endswith("4m 2s    6/6, loss 6.566")
    assert lines[3].endswith("2m 30s   40/100, loss 1.25, 2m 0s left")
    assert lines[4].endswith("-")


def test_an_apps_job_shows_the_losses_its_log_gave_and_what_its_task_returned():
    state = sweep_state()
    state.jobs["r8"].training = TrainingProgress(steps_done=299, loss=0.1755)
    state.jobs["r8"].returned = 0
    state.jobs["r16"].returned = 0.25
    lines = render_plain(state, NOW).splitlines()
    assert lines[2].endswith("4m 2s    step 299, loss 0.1755, returned 0")
    assert lines[3].endswith("returned 0.25")


def test_without_a_terminal_each_running_jobs_progress_is_logged_when_it_moved_at_most_every_3_minutes(caplog):
    from ttlaunch.monitor.live_view import _Quiet

    state = sweep_state()
    state.jobs["r16"].training = TrainingProgress(steps_done=40, steps_total=100, loss=1.25, step_time_s=2.0)
    clock = [0.0]
    view = _Quiet(state, clock=lambda: clock[0])
    with caplog.at_level("INFO", logger="ttlaunch.monitor.live_view"):
        view.refresh()
        state.jobs["r16"].training.steps_done = 41
        clock[0] = 179.0
        view.refresh()
        clock[0] = 180.0
        view.refresh()
        clock[0] = 400.0
        view.refresh()  # no step since: nothing new to say
    assert [record.getMessage() for record in caplog.records] == [
        "r16: 40/100, loss 1.25, 2m 0s left", "r16: 41/100, loss 1.25, 1m 58s left",
    ]


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
