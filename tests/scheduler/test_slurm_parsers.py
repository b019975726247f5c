"""Parsers of SLURM's output, on text recorded from the project's test cluster (SLURM 22.05)."""

import pytest

from ttlaunch.scheduler.slurm import (
    SchedulerCommandError,
    execute,
    parse_node_count,
    parse_node_list,
    parse_sacct,
    parse_squeue,
)
from ttlaunch.scheduler.states import STATE_TABLE, JobState, parse_state

from recorded import HISTORY, SACCT, SQUEUE


def test_parse_squeue_maps_states_through_the_table():
    entries = parse_squeue(SQUEUE)
    assert {job_id: entry.state for job_id, entry in entries.items()} == {
        "5": JobState.RUNNING, "6": JobState.PENDING, "7": JobState.RUNNING, "8": JobState.RUNNING,
    }
    assert (entries["6"].name, entries["6"].restarts) == ("rank8_lr1e-5", 1)
    assert entries["8"].name == "a|name|with|bars"
    assert parse_squeue("") == {}


def test_parse_sacct_skips_steps_and_reads_times():
    entries = parse_sacct(SACCT)
    assert sorted(entries) == ["1", "3", "4", "5", "8", "9"]
    assert entries["4"].state is JobState.FAILED and entries["4"].exit_code == "3:0"
    assert entries["3"].state is JobState.CANCELLED and entries["3"].raw_state == "CANCELLED by 0"
    assert entries["5"].end is None and entries["5"].start == "2026-11-22 23:34:01"
    assert entries["8"].state is JobState.TIMEOUT
    assert entries["9"].state is JobState.OUT_OF_MEMORY


@pytest.mark.parametrize(
    ("text", "state"),
    [("PD", JobState.PENDING), ("R", JobState.RUNNING), ("NODE_FAIL", JobState.NODE_FAIL),
     ("PREEMPTED", JobState.PREEMPTED), ("REQUEUED", JobState.REQUEUED), ("COMPLETED+", JobState.COMPLETED),
     ("BOOT_FAIL", JobState.FAILED), ("no such state", JobState.UNKNOWN)],
)
def test_state_table(text, state):
    assert parse_state(text) is state


def test_the_ends_are_slurms_finished_states_and_a_preemption_without_requeue_is_one():
    ended = {state for state in JobState if state.terminal}
    assert ended == {
        JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT, JobState.OUT_OF_MEMORY,
        JobState.NODE_FAIL, JobState.PREEMPTED, JobState.SUBMIT_FAILED, JobState.PRUNED,
    }
    # PRUNED is ttlaunch's own: no scheduler word maps to it, and it is an end as intended.
    assert JobState.PRUNED not in STATE_TABLE.values()
    assert {state for state in JobState if state.as_intended} == {JobState.COMPLETED, JobState.PRUNED}


def test_a_failing_command_names_command_code_and_output():
    with pytest.raises(SchedulerCommandError) as caught:
        execute(["sh", "-c", "echo out; echo 'sacct: error: Problem talking to the database' >&2; exit 1"])
    message = str(caught.value)
    assert "`sh -c" in message and "exit code 1" in message
    assert "Problem talking to the database" in message and "stdout: out" in message


def test_a_missing_command_is_an_error_not_a_crash():
    with pytest.raises(SchedulerCommandError, match="No such file"):
        execute(["squeue-not-installed-here"])


def test_every_run_of_a_requeued_job_is_kept_in_order():
    from ttlaunch.scheduler.slurm import parse_sacct_rows

    rows = parse_sacct_rows(HISTORY)
    assert [(row.job_id, row.state) for row in rows] == [("361", JobState.REQUEUED), ("361", JobState.RUNNING)]
    latest = parse_sacct(HISTORY)["361"]
    assert latest.state is JobState.RUNNING, "by job id, the latest run"
    assert (latest.runs, latest.elapsed_s, latest.start) == (2, 6, "2026-11-23 01:08:51"), "counting every run and its time"
    assert parse_sacct(SACCT)["1"].runs == 1


def test_a_jobs_node_list_and_a_partitions_size_are_read_from_sacct_and_sinfo():
    assert parse_node_list("gpu[01-02]\n") == "gpu[01-02]"
    assert parse_node_list("None assigned\n") is None and parse_node_list("") is None
    assert parse_node_count("6\n2\n") == 8, "sinfo groups the partition's nodes by state"
    assert parse_node_count("") is None
