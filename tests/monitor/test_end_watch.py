"""Job ends seen between polls from the result files jobs write, confirmed by sacct; squeue
stays once per poll interval. Scheduler commands answer from recorded text."""

from __future__ import annotations

import pickle
from pathlib import Path

from ttlaunch.backend.slurm_jobs import END_CONFIRM_FOR_S, SlurmPoller
from ttlaunch.inputs.schema import Executor
from ttlaunch.monitor.settings import MonitorSettings
from ttlaunch.monitor.sweep_monitor import LAST_ENDS_LOOK_S, Monitor
from ttlaunch.records.jobs_file import JobRecord
from ttlaunch.records.ledger import Ledger
from ttlaunch.scheduler import slurm

from support import InlineExecutor

SACCT_LINE = "{id}|{name}|{state}|0:0|2026-11-24T01:00:00|2026-11-24T01:00:01|2026-11-24T01:00:07|00:00:06\n"
SEFF = "Job ID: {id}\nCPU Efficiency: 50.00% of 00:00:12 core-walltime\nJob Wall-clock time: 00:00:06\n" \
       "Memory Utilized: 214.49 MB\nMemory Efficiency: 42.90% of 500.00 MB\n"
USAGE = "{id}|00:00:06|00:10:00|00:06.238|2|500M|\n{id}.batch|00:00:06||00:06.238|2||219636K\n"


class Cluster:
    """squeue, sacct and seff from recorded text: `states` is what accounting says of each job
    (a job is queued while it says RUNNING or PENDING); every call is counted."""

    def __init__(self, states: dict[str, tuple[str, str]]) -> None:
        self.states = states  # job id -> (name, state)
        self.calls: list[str] = []

    def execute(self, argv, timeout=60):
        self.calls.append(argv[0])
        if argv[0] == "squeue":
            return "".join(
                f"{job_id}|{state}|0|{name}\n" for job_id, (name, state) in self.states.items() if state in ("RUNNING", "PENDING")
            )
        if argv[0] == "seff":
            return SEFF.format(id=argv[1])
        ids = argv[argv.index("-j") + 1].split(",")
        if any(arg.startswith("--format=JobID,Elapsed") for arg in argv):
            return "".join(USAGE.format(id=job_id) for job_id in ids)
        return "".join(SACCT_LINE.format(id=job_id, name=self.states[job_id][0], state=self.states[job_id][1]) for job_id in ids)


def write_result(record: JobRecord, outcome: str = "success") -> None:
    """What submitit writes in the job dir as the job's function returns (or raises)."""
    path = Path(record.stdout).parent / f"{record.job_id}_0_result.pkl"
    path.write_bytes(pickle.dumps((outcome, None)))


def running_sweep(tmp_path: Path, names: dict[str, str]) -> Ledger:
    ledger = Ledger.open(tmp_path, "ends")
    ledger.state.executor = Executor.slurm
    for name, job_id in names.items():
        (tmp_path / name / "submitit").mkdir(parents=True)
        ledger.state.jobs[name] = JobRecord(
            name=name, job_id=job_id, status="RUNNING", started="2026-11-24 01:00:01", job_dir=str(tmp_path / name),
            stdout=str(tmp_path / name / "submitit" / f"{job_id}_0_log.out"),
        )
    return ledger


def test_a_result_file_is_an_end_only_once_sacct_confirms_it(tmp_path: Path, monkeypatch):
    cluster = Cluster({"41": ("a", "RUNNING"), "42": ("b", "RUNNING")})
    monkeypatch.setattr(slurm, "execute", cluster.execute)
    records = running_sweep(tmp_path, {"a": "41", "b": "42"}).state.jobs
    poller = SlurmPoller("me")
    assert poller.ended(records, now=0.0) == {} and cluster.calls == [], "no result file: nothing asked"

    write_result(records["a"])
    write_result(records["b"], "error")
    cluster.states["41"] = ("a", "COMPLETED")  # b's end is not in accounting yet
    ended = poller.ended(records, now=1.0)
    assert {name: observation.state.value for name, observation in ended.items()} == {"a": "COMPLETED"}
    assert ended["a"].elapsed_s == 6 and cluster.calls == ["sacct"], "one sacct for both"
    assert poller.confirming

    cluster.states["42"] = ("b", "FAILED")
    assert {name: o.state.value for name, o in poller.ended(records, now=2.0).items()} == {"b": "FAILED"}
    assert not poller.confirming
    assert poller.ended(records, now=3.0) == {} and cluster.calls == ["sacct", "sacct"], "each result looked into once"


def test_a_job_that_wrote_a_result_and_went_on_is_left_to_squeue_after_a_while(tmp_path: Path, monkeypatch):
    cluster = Cluster({"41": ("a", "RUNNING")})
    monkeypatch.setattr(slurm, "execute", cluster.execute)
    records = running_sweep(tmp_path, {"a": "41"}).state.jobs
    write_result(records["a"], "error")  # a requeued job's earlier attempt, say
    poller = SlurmPoller("me")
    assert poller.ended(records, now=0.0) == {}
    assert poller.ended(records, now=END_CONFIRM_FOR_S + 1) == {}
    asked = len(cluster.calls)
    assert poller.ended(records, now=END_CONFIRM_FOR_S + 2) == {} and len(cluster.calls) == asked
    assert not poller.confirming


def clocked_monitor(ledger: Ledger, on_tick) -> tuple[Monitor, list[float]]:
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds
        on_tick(clock[0])

    settings = MonitorSettings(poll_interval_s=60, metrics_retry_s=30, live="off", end_check_s=3)
    return Monitor(ledger, settings, sleep=sleep, clock=lambda: clock[0], metrics_commands=InlineExecutor()), clock


def test_a_sweeps_end_is_known_within_seconds_with_one_squeue(tmp_path: Path, monkeypatch):
    cluster = Cluster({"41": ("a", "RUNNING"), "42": ("b", "RUNNING")})
    monkeypatch.setattr(slurm, "execute", cluster.execute)
    ledger = running_sweep(tmp_path, {"a": "41", "b": "42"})

    def jobs_end_at_5_s(now: float) -> None:
        if now >= 5 and cluster.states["41"][1] == "RUNNING":
            for job_id, name in (("41", "a"), ("42", "b")):
                write_result(ledger.state.jobs[name])
                cluster.states[job_id] = (name, "COMPLETED")

    monitor, clock = clocked_monitor(ledger, jobs_end_at_5_s)
    monitor.follow()
    assert clock[0] <= 6, f"the end was learnt at {clock[0]} s, not at the next poll (60 s)"
    assert cluster.calls.count("squeue") == 1
    jobs = Ledger.existing(tmp_path).state.jobs
    assert {name: job.status for name, job in jobs.items()} == {"a": "COMPLETED", "b": "COMPLETED"}
    assert jobs["a"].metrics["cpu_efficiency"] == 50.0 and jobs["b"].metrics["cpu_efficiency"] == 50.0
    assert "ALL_COMPLETE" in ledger.events.path.read_text()


def test_a_job_killed_without_a_result_is_caught_by_the_next_squeue(tmp_path: Path, monkeypatch):
    cluster = Cluster({"41": ("a", "RUNNING")})
    monkeypatch.setattr(slurm, "execute", cluster.execute)
    ledger = running_sweep(tmp_path, {"a": "41"})

    def cancelled_at_10_s(now: float) -> None:
        if now >= 10:
            cluster.states["41"] = ("a", "CANCELLED")  # scancel: the job writes nothing

    monitor, clock = clocked_monitor(ledger, cancelled_at_10_s)
    monitor.follow()
    assert clock[0] == 60, "seen at the next poll"
    # Nothing asked between the polls (no result file); the second poll's sacct of the job gone.
    assert cluster.calls == ["squeue", "squeue", "sacct"]
    assert Ledger.existing(tmp_path).state.jobs["a"].status == "CANCELLED"


def test_the_last_jobs_end_is_confirmed_within_half_a_second_not_at_the_next_end_check(tmp_path: Path, monkeypatch):
    cluster = Cluster({"41": ("a", "RUNNING"), "42": ("b", "RUNNING")})
    monkeypatch.setattr(slurm, "execute", cluster.execute)
    ledger = running_sweep(tmp_path, {"a": "41", "b": "42"})
    ends = {"a": 1.2, "b": 4.2}  # b, the last, between the end checks at 3 s and 6 s

    def jobs_end(now: float) -> None:
        for job_id, name in (("41", "a"), ("42", "b")):
            if now >= ends[name] and cluster.states[job_id][1] == "RUNNING":
                write_result(ledger.state.jobs[name])
                cluster.states[job_id] = (name, "COMPLETED")

    monitor, clock = clocked_monitor(ledger, jobs_end)
    monitor.follow()
    assert clock[0] <= 4.2 + LAST_ENDS_LOOK_S, f"the last end was learnt at {clock[0]} s"
    assert {name: job.status for name, job in Ledger.existing(tmp_path).state.jobs.items()} == {
        "a": "COMPLETED", "b": "COMPLETED",
    }


def confirmations_asked(tmp_path: Path, monkeypatch, others_running: bool) -> list[float]:
    """When sacct is asked after job a, whose result is written at 1 s and whose end
    accounting records at 8 s (with job b running to the end of the sweep, or not there)."""
    jobs = {"41": ("a", "RUNNING"), **({"42": ("b", "RUNNING")} if others_running else {})}
    cluster = Cluster(jobs)
    asked: list[float] = []

    def execute(argv, timeout=60):
        if argv[0] == "sacct" and "-D" in argv and "41" in argv[argv.index("-j") + 1]:  # the end checks' asks of a
            asked.append(clock[0])
        return cluster.execute(argv, timeout)

    monkeypatch.setattr(slurm, "execute", execute)
    ledger = running_sweep(tmp_path, {name: job_id for job_id, (name, _) in jobs.items()})

    def result_at_1_s_end_at_8_s(now: float) -> None:
        if now >= 1 and not asked:
            write_result(ledger.state.jobs["a"])  # the job goes on a while (its epilogue, say)
        if now >= 8:
            cluster.states["41"] = ("a", "COMPLETED")
        if now >= 12 and others_running:
            write_result(ledger.state.jobs["b"])
            cluster.states["42"] = ("b", "COMPLETED")

    monitor, clock = clocked_monitor(ledger, result_at_1_s_end_at_8_s)
    monitor.follow()
    assert Ledger.existing(tmp_path).state.jobs["a"].status == "COMPLETED"
    assert 8 <= asked[-1] <= 9, f"its end learnt at {asked[-1]} s"
    return asked


def test_a_result_that_sacct_does_not_confirm_yet_is_asked_after_once_a_second_while_others_run(
    tmp_path: Path, monkeypatch
):
    asked = confirmations_asked(tmp_path, monkeypatch, others_running=True)
    assert all(later - earlier >= 0.99 for earlier, later in zip(asked, asked[1:])), f"asked at {asked}"


def test_the_last_jobs_unconfirmed_end_is_asked_after_soon_then_less_often(tmp_path: Path, monkeypatch):
    """The user waits for it: slurmdbd records an end a moment after the job's last write."""
    asked = confirmations_asked(tmp_path, monkeypatch, others_running=False)
    gaps = [round(later - earlier, 2) for earlier, later in zip(asked, asked[1:])]
    assert gaps[0] <= 0.2 and gaps == sorted(gaps) and max(gaps) <= 1.01, f"asked at {asked}"
    assert len(asked) <= 12, "twice as long each time, then once a second"


def test_a_local_jobs_exit_between_two_looks_is_recorded_at_once_not_at_the_next_poll(tmp_path: Path):
    """The end check looks at the job's handle every 0.2 s; the job exits just after a look."""
    from ttlaunch.backend.local_jobs import LOCAL_END_CHECK_S, LocalBackend

    class Handle:  # submitit's local job, as far as the backend reads it
        job_id = "4242"
        state = "RUNNING"

        def exception(self):
            return None

    ledger = Ledger.open(tmp_path, "local")
    ledger.state.jobs["a"] = JobRecord(name="a", job_id="4242", status="RUNNING", submitted="2026-11-24 01:00:01")
    backend, handle = LocalBackend(), Handle()
    backend.handles["a"] = handle
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds
        if clock[0] >= LOCAL_END_CHECK_S + 0.05:
            handle.state = "FINISHED"

    settings = MonitorSettings(poll_interval_s=30, live="off")
    Monitor(ledger, settings, backend, sleep=sleep, clock=lambda: clock[0]).follow()
    assert ledger.state.jobs["a"].status == "COMPLETED"
    assert clock[0] <= 2 * LOCAL_END_CHECK_S + 0.05, f"its end was learnt at {clock[0]} s, not within a look"
