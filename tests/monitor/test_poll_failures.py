"""What goes wrong handling one job in one poll costs that job's handling in that poll:
logged once, tried again at the next poll, every other job monitored as usual. Only a sweep
dir that vanished ends the monitor, with one line and the way back. (Scheduler answers
are recorded text; the real-cluster fault injection is tests/test_scheduler_faults_cluster.py.)"""

import shutil
import threading
import time
from pathlib import Path
from typing import Sequence

import pytest

from ttlaunch.backend.slurm_jobs import SlurmBackend
from ttlaunch.base.errors import MonitorStopped
from ttlaunch.inputs.schema import Executor
from ttlaunch.monitor.accounting import MetricsCollector
from ttlaunch.monitor.poll_failures import Containment
from ttlaunch.monitor.settings import MonitorSettings
from ttlaunch.monitor.sweep_monitor import Monitor, Reaction
from ttlaunch.records.jobs_file import JobRecord
from ttlaunch.records.ledger import Ledger
from ttlaunch.scheduler import slurm
from ttlaunch.scheduler.states import JobState

from support import InlineExecutor

# Two jobs that ended, as the test cluster's sacct, sacct usage and seff report them.
ENDED = (
    "41|a|COMPLETED|0:0|2026-11-23T01:00:00|2026-11-23T01:00:01|2026-11-23T01:00:07|00:00:06\n"
    "42|b|COMPLETED|0:0|2026-11-23T01:00:00|2026-11-23T01:00:01|2026-11-23T01:00:07|00:00:06\n"
)
USAGE = "{id}|00:00:06|00:10:00|00:06.238|2|500M|\n{id}.batch|00:00:06||00:06.238|2||219636K\n"
SEFF = "Job ID: {id}\nCPU Efficiency: 50.00% of 00:00:12 core-walltime\nJob Wall-clock time: 00:00:06\n" \
       "Memory Utilized: 214.49 MB\nMemory Efficiency: 42.90% of 500.00 MB\n"


class Cluster:
    """Answers scheduler commands from recorded text; `broken` job ids make their seff calls
    fail with an unexpected error (a bug's stand-in) that many times."""

    def __init__(self, queue: str = "") -> None:
        self.queue = queue
        self.broken: dict[str, int] = {}

    def execute(self, argv, timeout=60):
        if argv[0] == "squeue":
            return self.queue
        if argv[0] == "seff":
            if self.broken.get(argv[1], 0) > 0:
                self.broken[argv[1]] -= 1
                raise ZeroDivisionError("float division by zero")
            return SEFF.format(id=argv[1])
        if "--format=JobID,Elapsed,Timelimit,TotalCPU,AllocCPUS,ReqMem,MaxRSS" in argv:
            return "".join(USAGE.format(id=job_id) for job_id in argv[argv.index("-j") + 1].split(","))
        return ENDED


def two_running_jobs(tmp_path: Path) -> Ledger:
    ledger = Ledger.open(tmp_path, "cap")
    ledger.state.executor = Executor.slurm
    for name, job_id in (("a", "41"), ("b", "42")):
        ledger.state.jobs[name] = JobRecord(name=name, job_id=job_id, status="RUNNING", started="2026-11-23 01:00:01")
    return ledger


def quick_monitor(ledger: Ledger, reactions: Sequence[Reaction] = ()) -> Monitor:
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    return Monitor(
        ledger, MonitorSettings(poll_interval_s=1, metrics_retry_s=1, live="off"), sleep=sleep, clock=lambda: clock[0],
        metrics_commands=InlineExecutor(), reactions=reactions,
    )


def test_one_jobs_failing_metrics_are_logged_once_retried_and_the_other_job_is_unaffected(tmp_path, monkeypatch):
    cluster = Cluster()
    cluster.broken["41"] = 2  # fails at two polls, then accounting answers
    monkeypatch.setattr(slurm, "execute", cluster.execute)
    ledger = two_running_jobs(tmp_path)
    quick_monitor(ledger).follow()

    log = ledger.events.path.read_text()
    failure = log.split("POLL_FAILED: Handling a failed\n")[1].split("\n\n")[0]
    assert log.count("POLL_FAILED: Handling a failed") == 1, "the same error twice is said once"
    assert "Job: a\nStage: metrics\nError: ZeroDivisionError: float division by zero" in failure
    assert "Where: " in failure and "retried at the next poll" in failure
    assert "Handling b failed" not in log
    jobs = Ledger.existing(tmp_path).state.jobs
    assert jobs["a"].metrics["cpu_efficiency"] == 50.0, "collected at the third try"
    assert jobs["b"].metrics["cpu_efficiency"] == 50.0
    assert "ALL_COMPLETE" in log and (tmp_path / "summary.md").is_file()


def test_metrics_that_keep_failing_are_given_up_and_the_monitor_still_ends(tmp_path, monkeypatch):
    cluster = Cluster()
    cluster.broken["41"] = 1000
    monkeypatch.setattr(slurm, "execute", cluster.execute)
    ledger = two_running_jobs(tmp_path)
    quick_monitor(ledger).follow()
    log = ledger.events.path.read_text()
    assert "Result: not collected after 3 tries: ZeroDivisionError: float division by zero" in log
    assert Ledger.existing(tmp_path).state.jobs["a"].metrics == {}
    assert "| a | unknown |" not in (tmp_path / "summary.md").read_text(), "no figures at all: no row"
    assert "| b | 00:00:06 | 50.00% | 214.49 MB | 500.00 MB |" in (tmp_path / "summary.md").read_text()


class FlakyReaction:
    """A reaction that fails on its first news of job a."""

    name = "flaky"
    pending = False

    def __init__(self) -> None:
        self.heard: list[tuple[str, JobState]] = []
        self.failed = False

    def on_transition(self, job, record, previous, current):
        if job == "a" and not self.failed:
            self.failed = True
            raise KeyError("batch_size")
        self.heard.append((job, current))

    def after_poll(self, faults):
        return None


def test_a_reaction_failing_on_one_job_hears_of_it_again_at_the_next_poll(tmp_path, monkeypatch):
    monkeypatch.setattr(slurm, "execute", Cluster().execute)
    ledger = two_running_jobs(tmp_path)
    reaction = FlakyReaction()
    monitor = quick_monitor(ledger, [reaction])
    monitor.poll()
    assert reaction.heard == [("b", JobState.COMPLETED)]
    monitor.poll()
    assert reaction.heard == [("b", JobState.COMPLETED), ("a", JobState.COMPLETED)]
    log = ledger.events.path.read_text()
    assert "Job: a\nStage: flaky\nError: KeyError: 'batch_size'" in log
    assert log.count("STATE_CHANGE: a") == 1, "the state change itself was recorded once"


def test_a_state_change_that_cannot_be_recorded_is_recorded_whole_at_the_next_poll(tmp_path, monkeypatch):
    monkeypatch.setattr(slurm, "execute", Cluster().execute)
    ledger = two_running_jobs(tmp_path)
    monitor = quick_monitor(ledger)
    write_all = ledger.events.write_all
    refused = []

    def write_refusing_once(entries):
        if any(entry[:2] == ("STATE_CHANGE", "a") for entry in entries) and not refused:
            refused.append(True)
            raise OSError(28, "No space left on device")
        write_all(entries)

    monkeypatch.setattr(ledger.events, "write_all", write_refusing_once)
    monitor.poll()
    assert ledger.state.jobs["a"].status == "RUNNING", "not half-recorded"
    assert ledger.state.jobs["b"].status == "COMPLETED"
    assert monitor.metrics.waiting == ["b"]
    monitor.poll()
    record = ledger.state.jobs["a"]
    assert (record.status, record.elapsed, record.exit_code) == ("COMPLETED", "6s", "0:0")
    assert Ledger.existing(tmp_path).state.jobs["a"].status == "COMPLETED", "in jobs.json"
    log = ledger.events.path.read_text()
    assert log.count("STATE_CHANGE: a") == 1 and "POLL_FAILED: Could not record\nError: No space left on device (errno 28)" in log


def test_an_answer_nobody_can_read_is_a_failed_poll_not_a_crash(tmp_path, monkeypatch):
    cluster = Cluster(queue="JOBID STATE\n41|RUNNING\n")  # squeue of another format
    monkeypatch.setattr(slurm, "execute", cluster.execute)
    ledger = two_running_jobs(tmp_path)
    assert quick_monitor(ledger).poll() == 2
    log = ledger.events.path.read_text()
    assert "POLL_FAILED: Querying SLURM failed" in log and "answered in a form ttlaunch cannot read" in log


def test_a_vanished_sweep_dir_stops_the_monitor_with_the_way_back(tmp_path, monkeypatch):
    monkeypatch.setattr(slurm, "execute", Cluster(queue="41|RUNNING|0|a\n42|RUNNING|0|b\n").execute)
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    ledger = two_running_jobs(sweep)
    monitor = quick_monitor(ledger)
    monitor.poll()
    shutil.rmtree(sweep)
    with pytest.raises(MonitorStopped) as stopped:
        monitor.follow()
    message = str(stopped.value)
    assert f"the sweep dir {sweep} is gone" in message
    assert f"python -m ttlaunch.status {sweep} --follow" in message and "\n" not in message


def test_an_unchanged_status_check_is_logged_at_most_once_a_minute(tmp_path, monkeypatch):
    monkeypatch.setattr(slurm, "execute", Cluster(queue="41|RUNNING|0|a\n42|RUNNING|0|b\n").execute)
    ledger = two_running_jobs(tmp_path)
    clock = [0.0]
    monitor = Monitor(ledger, MonitorSettings(poll_interval_s=2), clock=lambda: clock[0])
    for _ in range(30):  # a minute of polls 2 s apart, nothing changing
        monitor._status_check()
        clock[0] += 2
    assert ledger.events.path.read_text().count("STATUS_CHECK") == 1
    monitor._status_check()
    assert ledger.events.path.read_text().count("STATUS_CHECK") == 2, "a minute later it is said again"
    ledger.state.jobs["a"].status = JobState.COMPLETED
    monitor._status_check()
    assert ledger.events.path.read_text().count("STATUS_CHECK") == 3, "a change is said at once"


def test_metrics_are_collected_beside_the_monitor_and_a_stop_keeps_their_jobs_due(tmp_path, monkeypatch):
    answer = threading.Event()
    cluster = Cluster()

    def slow_accounting(argv, timeout=60):
        answer.wait(10)  # slurmdbd taking its time
        return cluster.execute(argv, timeout)

    monkeypatch.setattr(slurm, "execute", slow_accounting)
    ledger = two_running_jobs(tmp_path)
    collector = MetricsCollector(ledger, SlurmBackend("tester"), Containment(ledger.events, tmp_path), 30, 1, clock=lambda: 0.0)
    collector.add("a")
    assert collector.collect_due() is False and collector.pending, "started, not waited for"
    answer.set()
    for _ in range(100):
        if collector.collect_due():
            break
        time.sleep(0.05)  # the worker threads' turn
    assert ledger.state.jobs["a"].metrics["cpu_efficiency"] == 50.0 and not collector.pending

    answer.clear()
    collector.add("b")
    collector.collect_due()
    collector.close()  # Ctrl-C meanwhile
    answer.set()
    assert collector.waiting == ["b"] and ledger.state.jobs["b"].metrics == {}
