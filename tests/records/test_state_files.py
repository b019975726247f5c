"""A sweep's own files, damaged or from another version: read as what they are, or refused
in one line that names the file, what is wrong and how to go on; rebuilt from what else is on disk."""

import errno
import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest

from ttlaunch.base.errors import DamagedFile
from ttlaunch.inputs.failure_causes import CausePattern, FailureCause
from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.records.event_log import EventLog, read_events
from ttlaunch.records.jobs_file import STATE_VERSION, JobKind, JobRecord, SweepState, TrainingProgress, load_state, save_state
from ttlaunch.records.rebuild import rebuild
from ttlaunch.records.rules_state import QueuedAction, RulesState
from ttlaunch.records.status_table import edited_header
from ttlaunch.records.sweep_lock import holder_of
from ttlaunch.scheduler.states import JobState


def saved_state(tmp_path: Path) -> Path:
    state = SweepState(experiment="x", sweep_dir=str(tmp_path))
    state.jobs["a"] = JobRecord(name="a", job_id="7", status="RUNNING")
    save_state(tmp_path / "jobs.json", state)
    return tmp_path / "jobs.json"


def refusal(path: Path) -> str:
    with pytest.raises(DamagedFile) as caught:
        load_state(path, "x", path.parent)
    return str(caught.value)


def test_a_state_file_cut_short_names_the_file_the_problem_and_the_way_on(tmp_path: Path):
    path = saved_state(tmp_path)
    path.write_text(path.read_text()[:40])
    assert refusal(path).startswith(f"{path}: not valid JSON (line ")
    assert f"`ttlaunch status {tmp_path} --rebuild`" in refusal(path)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda data: data["jobs"]["a"].update(attempt="two"), "jobs.a.attempt is 'two', not of type int"),
        (lambda data: data["jobs"]["a"].update(status="DONE"), "jobs.a.status is 'DONE', not a job state"),
        (lambda data: data["jobs"]["a"].update(colour="red"), "jobs.a has fields no job record has: colour"),
        (lambda data: data["jobs"]["a"].update(kind="eval"), "jobs.a.kind is 'eval', not one of training, evaluation"),
        (lambda data: data.update(jobs=[1, 2]), "jobs is not an object of job records"),
        (
            lambda data: data.update(payload_kind="tune"),
            "payload_kind is 'tune', not one of torchtune, command, app, evaluation",
        ),
        (lambda data: data.update(evaluator="lm-eval"), "evaluator is 'lm-eval', not one of inspect, command"),
        (lambda data: data["jobs"]["a"].update(cause="oom"), "jobs.a.cause is 'oom', not one of gpu_oom, host_oom, node_failure"),
        (
            lambda data: data.update(cause_patterns=[{"cause": "node_failure", "pattern": "(unclosed"}]),
            "cause_patterns holds '(unclosed', not a regular expression",
        ),
        (lambda data: data.update(cause_patterns=[{"cause": "hardware"}]), "cause_patterns holds {'cause': 'hardware'}, not a cause"),
        (lambda data: data.update(excluded_nodes=["gpu07"]), "excluded_nodes is not an object of node names and times"),
        (lambda data: data.pop("version"), "version is None, not a state version number"),
        (lambda data: data.update(version=0), "state version 0 was never written by ttlaunch"),
    ],
)
def test_an_edited_state_file_names_the_field(tmp_path: Path, edit, problem):
    path = saved_state(tmp_path)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    assert refusal(path).startswith(f"{path}: {problem}")


def test_a_state_from_a_newer_ttlaunch_is_refused_with_what_to_upgrade(tmp_path: Path):
    path = saved_state(tmp_path)
    data = json.loads(path.read_text())
    data["version"] = STATE_VERSION + 1
    path.write_text(json.dumps(data))
    assert f"written by a newer ttlaunch (state version {STATE_VERSION + 1}" in refusal(path)
    assert "pip install -U ttlaunch" in refusal(path)


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_state_is_read_as_the_current_one(tmp_path: Path, version: int):
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps({
        "version": version, "experiment": "x", "sweep_dir": str(tmp_path),
        "jobs": {"a": {"run": "a", "job_id": "7", "status": "COMPLETED"}},
    }))
    state = load_state(path, "x", tmp_path)
    record = state.jobs["a"]
    assert (record.name, record.status) == ("a", "COMPLETED") and state.unsubmitted == [] and not record.stopped_by_ttlaunch
    save_state(path, state)
    saved = json.loads(path.read_text())
    assert saved["version"] == STATE_VERSION and saved["jobs"]["a"]["name"] == "a" and "run" not in saved["jobs"]["a"]


def test_a_version_9_evaluation_reads_as_the_one_task_its_name_says(tmp_path: Path):
    path = tmp_path / "jobs.json"
    scores = {"metrics": {"match/accuracy": 0.75}, "samples": 4, "log": "x.eval"}
    path.write_text(json.dumps({
        "version": 9, "experiment": "x", "sweep_dir": str(tmp_path), "jobs": {
            "r8/cap/epoch1": {"name": "r8/cap/epoch1", "kind": "evaluation", "status": "COMPLETED", "scores": scores},
            "base/cap": {"name": "base/cap", "kind": "evaluation", "status": "FAILED"},
        },
    }))
    state = load_state(path, "x", tmp_path)
    assert (state.jobs["r8/cap/epoch1"].tasks, state.jobs["r8/cap/epoch1"].scores) == (["cap"], {"cap": scores})
    assert (state.jobs["base/cap"].tasks, state.jobs["base/cap"].scores) == (["cap"], {})


def test_causes_the_users_patterns_and_an_early_stop_read_back(tmp_path: Path):
    state = SweepState(
        experiment="x", sweep_dir=str(tmp_path), cause_patterns=[CausePattern(FailureCause.node_failure, r"GPU \d+ lost")],
        stopped="the same error ended 3 runs: KeyError: 'labels'", excluded_nodes={"gpu07": "2026-12-07 18:00:00"},
    )
    state.jobs["a"] = JobRecord(name="a", job_id="7", status=JobState.FAILED, cause=FailureCause.gpu_oom)
    path = tmp_path / "jobs.json"
    save_state(path, state)
    saved = json.loads(path.read_text())
    assert saved["jobs"]["a"]["cause"] == "gpu_oom" and saved["cause_patterns"] == [{"cause": "node_failure", "pattern": r"GPU \d+ lost"}]
    assert load_state(path, "x", tmp_path) == state


def test_the_state_file_holds_one_line_per_job_and_reads_back_whole(tmp_path: Path):
    state = SweepState(experiment="x", sweep_dir=str(tmp_path), payload_kind=PayloadKind.command)
    for name in ("a", "b"):
        state.jobs[name] = JobRecord(
            name=name, job_id="7", status="COMPLETED", requeues=[{"attempt": 1, "reason": "PREEMPTED"}],
            training=TrainingProgress(steps_done=3, loss=0.5, read={"/log": 10}), scores={"metrics": {"match/accuracy": 1.0}},
        )
    path = tmp_path / "jobs.json"
    save_state(path, state)
    lines = path.read_text().splitlines()
    assert [line.split(":")[0].strip() for line in lines if line.startswith("    ")] == ['"a"', '"b"']
    assert json.loads(path.read_text()) == {"version": STATE_VERSION, **asdict(state)}
    assert load_state(path, "x", tmp_path) == state
    save_state(path, SweepState(experiment="x", sweep_dir=str(tmp_path)))
    assert json.loads(path.read_text())["jobs"] == {}


def test_queued_actions_are_kept_across_monitors(tmp_path: Path):
    state = RulesState(queued=[QueuedAction("k", "a", "epoch_saved", 1, {"path": "/ck/epoch_0"}, 12.5)])
    state.save(tmp_path / "rules.json")
    assert RulesState.load(tmp_path / "rules.json").queued == state.queued


def test_damaged_rules_bookkeeping_is_refused(tmp_path: Path):
    (tmp_path / "rules.json").write_text('{"offsets": {"a": {"/log": "x"}}}')
    with pytest.raises(DamagedFile, match="rules.json: not the rules' bookkeeping"):
        RulesState.load(tmp_path / "rules.json")
    (tmp_path / "rules.json").write_text('{"queued": [{"key": "k", "job": "a", "event": "e", "action": "first"}]}')
    with pytest.raises(DamagedFile, match="rules.json: not the rules' bookkeeping"):
        RulesState.load(tmp_path / "rules.json")
    (tmp_path / "rules.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(DamagedFile, match=r"not text \(byte 0 is not UTF-8\)"):
        RulesState.load(tmp_path / "rules.json")


def test_a_damaged_lock_holder_record_is_said_to_be_damaged(tmp_path: Path):
    holder = tmp_path / ".monitor.holder"
    assert holder_of(holder) == "another process"
    holder.write_text("pid 12 on login1 since 2026-11-23 10:00:00\n")
    assert holder_of(holder) == "pid 12 on login1 since 2026-11-23 10:00:00"
    holder.write_bytes(b"pid 12 on lo\x00\xff")
    assert holder_of(holder) == f"another process; its record {holder} is damaged"


def test_a_status_table_whose_header_was_edited_is_found():
    ours = "## Fine-tuning\n\n| Run Name | Status | Job ID | Started | Completed | Notes |\n|---|---|---|---|---|---|\n| a | - | - | - | - | - |\n"
    assert edited_header(ours) is None
    assert edited_header("# Plan\n\nNo table here.\n") is None
    edited = ours.replace("| Job ID |", "| Slurm ID |")
    assert edited_header(edited) == (3, "| Run Name | Status | Slurm ID | Started | Completed | Notes |")
    other = "## Budget\n\n| Item | Cost |\n|---|---|\n| GPUs | 10 |\n"
    assert edited_header(other) is None


def test_event_log_entries_are_read_back_and_a_cut_entry_is_skipped(tmp_path: Path):
    log = EventLog(tmp_path / "run-torchtune.log", now=lambda: "2026-11-23 10:00:00")
    log.write("SUBMIT_JOB", "a", ("Result", "Job ID 7 submitted at 2026-11-23 10:00:00"))
    log.write("STATE_CHANGE", "a", ("Previous", "PENDING"), ("Current", "RUNNING"))
    text = (tmp_path / "run-torchtune.log").read_text()
    events = read_events(text + "[2026-11-23 10:00:01] STATE_CH")
    assert [(event.action, event.description) for event in events] == [("SUBMIT_JOB", "a"), ("STATE_CHANGE", "a")]
    assert events[1].fields == {"Previous": "PENDING", "Current": "RUNNING"}


def test_entries_written_together_are_all_there_or_none(tmp_path: Path, monkeypatch):
    log = EventLog(tmp_path / "run-torchtune.log")
    log.write("SUBMIT_JOB", "a", ("Result", "Job ID 7 submitted at 2026-11-23 10:00:00"))
    before = (tmp_path / "run-torchtune.log").read_bytes()
    real_write = os.write

    def half_then_full(descriptor, data):  # the disk fills up in the middle of the entries
        if len(data) > 20:
            return real_write(descriptor, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(OSError):
        log.write_all([("STATE_CHANGE", "a", [("Current", "RUNNING")]), ("STATE_CHANGE", "a", [("Current", "COMPLETED")])])
    assert (tmp_path / "run-torchtune.log").read_bytes() == before


def test_rebuild_finds_every_submission_in_the_log_and_the_job_dirs(tmp_path: Path):
    log = EventLog(tmp_path / "run-torchtune.log", now=lambda: "2026-11-23 10:00:00")
    log.write("DISCOVER_EXPERIMENT", "Found experiment", ("Details", str(tmp_path / "exp" / "summary.yaml")),
              ("Result", "Experiment cap has 3 fine-tuning runs"))
    for name, job_id in (("a", "7"), ("b", "8"), ("a", "9")):  # a was submitted twice
        log.write("SUBMIT_JOB", name, ("Executor", "slurm"), ("Result", f"Job ID {job_id} submitted at 2026-11-23 10:00:00"),
                  ("Run", name), ("Output dir", f"/out/{name}"), ("Time limit", "600 s"))
    log.write("SUBMIT_FAILED", "c", ("Error", "sbatch: error: invalid partition specified: nowhere"))
    for name, job_id in (("a", "7"), ("a", "9"), ("b", "8"), ("d", "12"), ("a/gsm8k/epoch1", "13")):
        folder = tmp_path / name / "submitit"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{job_id}_submitted.pkl").write_bytes(b"")
        (folder / f"{job_id}_submission.sh").write_text("#!/bin/bash\n")
    (tmp_path / "jobs.json").write_text('{"version": 2, "jobs": {"a": {"run": "a", "job_')

    state, kept = rebuild(tmp_path)

    assert [path.name.startswith("jobs.json.damaged-") for path in kept] == [True]
    assert not (tmp_path / "jobs.json").exists() and kept[0].read_text().endswith('"job_')
    assert state.experiment == "cap" and state.executor == "slurm"
    jobs = state.jobs
    assert set(jobs) == {"a", "b", "c", "d", "a/gsm8k/epoch1"}
    assert (jobs["a"].job_id, jobs["a"].previous_job_ids, jobs["a"].output_dir, jobs["a"].time_limit_s) == ("9", ["7"], "/out/a", 600)
    assert jobs["a"].stderr == str(tmp_path / "a" / "submitit" / "9_0_log.err") and jobs["a"].status == "PENDING"
    assert (jobs["c"].status, jobs["c"].error) == ("SUBMIT_FAILED", "sbatch: error: invalid partition specified: nowhere")
    assert jobs["d"].job_id == "12"  # in its job dir only: the log missed it
    assert (jobs["a/gsm8k/epoch1"].kind, jobs["a/gsm8k/epoch1"].run_name) == (JobKind.EVALUATION, "a")


def test_rebuild_refuses_a_state_file_that_reads_fine(tmp_path: Path):
    saved_state(tmp_path)
    with pytest.raises(FileExistsError, match="is readable: nothing to rebuild"):
        rebuild(tmp_path)
