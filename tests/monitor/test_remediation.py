"""What remediation does at each cause, on records and logs written here (the launching side
recorded): restarts that keep the experiment, their bounds, and the early stop."""

from pathlib import Path

from ttlaunch.inputs.failure_causes import FailureCause
from ttlaunch.inputs.payload_command import PayloadCommand
from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.inputs.schema import ComputeConfig, RemediationConfig
from ttlaunch.job.job_plan import JobPlan, save_plan
from ttlaunch.monitor.remediation import Remediation
from ttlaunch.records.jobs_file import JobRecord
from ttlaunch.records.ledger import Ledger
from ttlaunch.scheduler.states import JobState

from support import Recorder


def failed_job(ledger: Ledger, tmp_path: Path, name: str, cause: FailureCause | None, log: str = "", **fields) -> JobRecord:
    job_dir = tmp_path / name
    (job_dir / "outputs").mkdir(parents=True, exist_ok=True)
    (job_dir / "err").write_text(log)
    record = JobRecord(
        name=name, run_name=name, job_id=f"{len(ledger.state.jobs) + 1}", cause=cause, job_dir=str(job_dir),
        output_dir=str(job_dir / "outputs"), stderr=str(job_dir / "err"), **{"status": JobState.FAILED, **fields},
    )
    ledger.state.jobs[name] = record
    return record


def end(remediation: Remediation, ledger: Ledger, name: str, cause: FailureCause) -> None:
    """The job's newest submission ends with `cause`, as a poll would see it."""
    record = ledger.state.jobs[name]
    record.status, record.cause = JobState.FAILED, cause
    remediation.on_transition(name, record, JobState.RUNNING, JobState.FAILED)


def test_a_gpu_out_of_memory_restarts_with_half_the_micro_batch_and_twice_the_accumulation_down_to_one(tmp_path: Path):
    ledger = Ledger.open(tmp_path, "x")
    record = failed_job(ledger, tmp_path, "r", FailureCause.gpu_oom)
    Path(record.output_dir, "torchtune_config.yaml").write_text("batch_size: 4\ngradient_accumulation_steps: 2\nepochs: 1\n")
    recorder = Recorder(ledger)
    remediation = Remediation(RemediationConfig(max_restarts=5), ledger, recorder)
    end(remediation, ledger, "r", FailureCause.gpu_oom)
    end(remediation, ledger, "r", FailureCause.gpu_oom)
    end(remediation, ledger, "r", FailureCause.gpu_oom)
    assert [overrides for *_, overrides in recorder.submitted] == [
        ["++payload.extra_overrides=['batch_size=2','gradient_accumulation_steps=4']"],
        ["++payload.extra_overrides=['batch_size=1','gradient_accumulation_steps=8']"],
    ], "the effective batch stays 8"
    assert [entry["change"] for entry in ledger.state.jobs["r"].restarts] == ["batch 4→2 × accum 2→4", "batch 2→1 × accum 4→8"]
    log = ledger.events.path.read_text()
    assert "Cause: gpu_oom\nResult: not restarted: its micro-batch is 1 already" in log


def test_a_commands_micro_batch_comes_from_its_declared_keys_and_an_odd_one_shrinks_by_a_divisor(tmp_path: Path):
    ledger = Ledger.open(tmp_path, "x")
    record = failed_job(ledger, tmp_path, "r", FailureCause.gpu_oom)
    argv = ("python3", "train.py", "batch_size=6", "accum=1")
    save_plan(Path(record.job_dir), JobPlan("r", PayloadKind.command, PayloadCommand(argv, {}, Path(record.output_dir)), False, 1))
    recorder = Recorder(ledger)
    Remediation(RemediationConfig(), ledger, recorder, ["batch_size", "accum"]).on_transition("r", record, JobState.RUNNING, JobState.FAILED)
    assert recorder.submitted[0][3] == ["++payload.extra_overrides=['batch_size=3','accum=2']"]

    undeclared = Ledger.open(tmp_path / "other", "x")
    record = failed_job(undeclared, tmp_path / "other", "r", FailureCause.gpu_oom)
    Remediation(RemediationConfig(), undeclared, Recorder(undeclared)).on_transition("r", record, JobState.RUNNING, JobState.FAILED)
    assert "not restarted: its micro-batch size is not known (declare the command's keys in payload.batch_keys)" in (
        undeclared.events.path.read_text()
    )


def test_the_nodes_memory_restarts_with_more_memory_up_to_its_bound(tmp_path: Path):
    ledger = Ledger.open(tmp_path, "x")
    failed_job(ledger, tmp_path, "r", FailureCause.host_oom)
    recorder = Recorder(ledger, ComputeConfig(mem_gb=8))
    remediation = Remediation(RemediationConfig(max_restarts=10, max_mem_gb=20), ledger, recorder)
    for _ in range(4):
        end(remediation, ledger, "r", FailureCause.host_oom)
    assert recorder.memory == [12.0, 18.0, 20.0]
    assert [entry["change"] for entry in ledger.state.jobs["r"].restarts][-1] == "memory 18→20 GB"
    assert "not restarted: it asks for 20 GB already, the bound (remediation.max_mem_gb" in ledger.events.path.read_text()
    end(remediation, ledger, "r", FailureCause.node_failure)
    assert recorder.memory[-1] == 20.0, "a run that got more memory keeps it"


def test_a_node_or_interconnect_failure_restarts_as_it_was_at_most_max_restarts_times(tmp_path: Path):
    ledger = Ledger.open(tmp_path, "x")
    failed_job(ledger, tmp_path, "r", FailureCause.node_failure)
    recorder = Recorder(ledger)
    remediation = Remediation(RemediationConfig(max_restarts=2), ledger, recorder)
    for cause in (FailureCause.node_failure, FailureCause.communication, FailureCause.node_failure):
        end(remediation, ledger, "r", cause)
    assert recorder.submitted == [("r", "r", "r", []), ("r", "r", "r", [])]
    assert [entry["after"] for entry in ledger.state.jobs["r"].restarts] == ["node_failure", "communication"]
    assert "not restarted: 2 restarts already (remediation.max_restarts=2)" in ledger.events.path.read_text()


def test_a_failed_node_is_left_out_of_later_submissions_within_its_share_and_forgiven_when_a_job_completes_there(tmp_path: Path):
    ledger = Ledger.open(tmp_path, "x")
    for name in ("a", "b", "c"):
        failed_job(ledger, tmp_path, name, FailureCause.node_failure)
    recorder = Recorder(ledger, ComputeConfig(partition="gpu"), partition_nodes=8)
    recorder.nodes = {"1": ["gpu01"], "2": ["gpu02"], "3": ["gpu03"], "new1": ["gpu04"]}
    remediation = Remediation(RemediationConfig(max_excluded_share=0.25), ledger, recorder)
    for name in ("a", "b", "c"):
        end(remediation, ledger, name, FailureCause.node_failure)
    assert ledger.state.excluded_now() == ["gpu01", "gpu02"], "2 of the partition's 8 nodes at most"
    assert [job.restarts[0]["change"] for job in ledger.state.jobs.values()] == ["without gpu01", "without gpu02", "as it was"]
    log = ledger.events.path.read_text()
    assert "Result: not left out: 3 of the 8 nodes of partition gpu would be, above remediation.max_excluded_share=0.25" in log

    recorder.nodes["new2"] = ["gpu01"]  # b's restart ran on gpu01 after all (it was running there) and completed
    ledger.state.jobs["b"].status = JobState.COMPLETED
    remediation.on_transition("b", ledger.state.jobs["b"], JobState.RUNNING, JobState.COMPLETED)
    assert ledger.state.excluded_now() == ["gpu02"] and "Result: forgiven: a job completed there" in ledger.events.path.read_text()


def test_remediation_off_restarts_nothing(tmp_path: Path):
    ledger = Ledger.open(tmp_path, "x")
    failed_job(ledger, tmp_path, "r", FailureCause.node_failure)
    recorder = Recorder(ledger)
    end(Remediation(RemediationConfig(enabled=False, same_error_stop=0), ledger, recorder), ledger, "r", FailureCause.node_failure)
    assert recorder.submitted == [] and ledger.state.jobs["r"].restarts == []


TRACEBACK = 'Traceback (most recent call last):\n  File "/x/train.py", line 3, in <module>\n'


def test_the_same_error_in_three_runs_stops_the_sweep_and_cancels_only_its_queued_jobs(tmp_path: Path):
    ledger = Ledger.open(tmp_path, "x")
    for index in range(6):
        failed_job(ledger, tmp_path, f"r{index}", None, status=JobState.PENDING)
    ledger.state.jobs["r5"].status = JobState.RUNNING
    ledger.state.unsubmitted = ["r6", "r7"]
    recorder = Recorder(ledger)
    remediation = Remediation(RemediationConfig(), ledger, recorder)
    for index, path in enumerate(["/data/a/train.jsonl", "/data/b/train.jsonl"]):
        Path(ledger.state.jobs[f"r{index}"].stderr).write_text(f"{TRACEBACK}FileNotFoundError: [Errno 2] No such file: '{path}'\n")
        end(remediation, ledger, f"r{index}", FailureCause.code)
    Path(ledger.state.jobs["r2"].stderr).write_text(f"{TRACEBACK}KeyError: 'labels'\n")
    end(remediation, ledger, "r2", FailureCause.code)
    assert ledger.state.stopped is None and recorder.cancelled == [], "different errors: the sweep goes on"

    Path(ledger.state.jobs["r3"].stderr).write_text(
        f"{TRACEBACK}FileNotFoundError: [Errno 2] No such file: '/data/c/train.jsonl'\nttlaunch: the payload exited with code 1\n"
        f"{TRACEBACK}RuntimeError: the payload failed\n"
    )
    end(remediation, ledger, "r3", FailureCause.code)
    assert ledger.state.stopped == "the same error ended 3 runs: FileNotFoundError: [Errno <n>] No such file: '<path>'"
    assert recorder.cancelled == ["r4"], "queued ones are cancelled, not the running one"
    assert recorder.submitted == [], "a code error is never restarted"
    log = ledger.events.path.read_text()
    assert "SWEEP_STOPPED: Same error in several runs" in log and "Runs: r0, r1, r3" in log
    assert f"First traceback: {tmp_path / 'r0' / 'err'}" in log and "Held back: r4, r6, r7" in log


def test_a_monitor_that_resumed_counts_the_errors_runs_died_of_before_it(tmp_path: Path):
    ledger = Ledger.open(tmp_path, "x")
    for index in range(3):
        failed_job(ledger, tmp_path, f"r{index}", FailureCause.code, log=f"{TRACEBACK}KeyError: 'labels'\n")
    ledger.state.jobs["r2"].cause = None  # its end is what the resumed monitor sees now
    end(Remediation(RemediationConfig(), ledger, Recorder(ledger)), ledger, "r2", FailureCause.code)
    assert ledger.state.stopped == "the same error ended 3 runs: KeyError: 'labels'"


WRAPPER = (
    "Traceback (most recent call last):\n  File \"/venv/ttlaunch/job/task.py\", line 81, in finish_command\n"
    "ttlaunch.base.errors.PayloadFailed: payload of run 'r' exited with code 137: python train.py\n"
)


def test_an_end_gets_its_cause_from_the_payloads_log_not_from_the_wrappers_traceback(tmp_path: Path):
    from ttlaunch.backend.observation import Observation
    from ttlaunch.job.failure import PAYLOAD_EXIT
    from ttlaunch.monitor.state_changes import apply_state

    def ended(log: str, state: JobState = JobState.FAILED) -> tuple[JobRecord, list]:
        stderr = tmp_path / "err"
        stderr.write_text(log)
        record = JobRecord(name="r", job_id="7", status=JobState.RUNNING, stderr=str(stderr))
        return record, apply_state(record, Observation(state=state, exit_code="1:0"))

    record, [(_, _, fields)] = ended(f"{TRACEBACK}KeyError: 'labels'\n{PAYLOAD_EXIT} 1\n{WRAPPER}")
    assert record.cause is FailureCause.code and ("Cause", "code") in fields
    assert ended(f"step 3\n{PAYLOAD_EXIT} 137\n{WRAPPER}")[0].cause is FailureCause.unknown, "killed without a word"
    killed = f"step 3\n{PAYLOAD_EXIT} 137\n{WRAPPER}slurmstepd: error: Exceeded job memory limit\n"
    assert ended(killed)[0].cause is FailureCause.host_oom
    assert ended("", JobState.TIMEOUT)[0].cause is FailureCause.time_limit
    assert ended("", JobState.COMPLETED)[0].cause is None
