"""Parsers of SLURM's output, on text recorded from the project's test cluster (SLURM 22.05)."""

import pytest

from ttlaunch.slurm import SchedulerCommandError, parse_sacct, parse_squeue, run
from ttlaunch.states import JobState, parse_state

SQUEUE = """\
5|RUNNING|0|long_name_run
6|PENDING|1|rank8_lr1e-5
7|COMPLETING|0|rank16_lr1e-5
8|RUNNING|0|a|name|with|bars
"""

SACCT = """\
1|wrap|COMPLETED|0:0|2026-11-22T23:31:38|2026-11-22T23:31:39|2026-11-22T23:31:41|00:00:02
3|wrap|CANCELLED by 0|0:0|2026-11-22T23:31:46|2026-11-22T23:31:46|2026-11-22T23:31:49|00:00:03
4|failing|FAILED|3:0|2026-11-22T23:34:00|2026-11-22T23:34:01|2026-11-22T23:34:01|00:00:00
4.batch|batch|FAILED|3:0|2026-11-22T23:34:01|2026-11-22T23:34:01|2026-11-22T23:34:01|00:00:00
5|long_name_run|RUNNING|0:0|2026-11-22T23:34:00|2026-11-22T23:34:01|Unknown|00:00:03
8|slow|TIMEOUT|0:0|2026-11-22T23:40:00|2026-11-22T23:40:01|2026-11-22T23:41:15|00:01:14
9|big|OUT_OF_MEMORY|0:125|2026-11-22T23:40:00|2026-11-22T23:40:01|2026-11-22T23:40:09|00:00:08
"""


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


def test_a_failing_command_names_command_code_and_output():
    with pytest.raises(SchedulerCommandError) as caught:
        run(["sh", "-c", "echo out; echo 'sacct: error: Problem talking to the database' >&2; exit 1"])
    message = str(caught.value)
    assert "`sh -c" in message and "exit code 1" in message
    assert "Problem talking to the database" in message and "stdout: out" in message


def test_a_missing_command_is_an_error_not_a_crash():
    with pytest.raises(SchedulerCommandError, match="No such file"):
        run(["squeue-not-installed-here"])


# `sacct -D` of a job requeued once by `scontrol requeue`, running again (test cluster).
HISTORY = """\
361|wrap|REQUEUED|0:0|2026-11-23T01:08:35|2026-11-23T01:08:37|2026-11-23T01:08:39|00:00:02
361.batch|batch|CANCELLED|0:15|2026-11-23T01:08:37|2026-11-23T01:08:37|2026-11-23T01:08:39|00:00:02
361|wrap|RUNNING|0:0|2026-11-23T01:08:35|2026-11-23T01:08:51|Unknown|00:00:04
"""


def test_every_run_of_a_requeued_job_is_kept_in_order():
    from ttlaunch.slurm import parse_sacct_rows

    rows = parse_sacct_rows(HISTORY)
    assert [(row.job_id, row.state) for row in rows] == [("361", JobState.REQUEUED), ("361", JobState.RUNNING)]
    assert parse_sacct(HISTORY)["361"].state is JobState.RUNNING, "by job id, the latest run"
