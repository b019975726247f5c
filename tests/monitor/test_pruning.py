"""Early stopping (ttlaunch.monitor.pruning) on records and metric files written here: the
halving rule, replicates, scores, decisions kept once, and what the records say after."""

import json
from pathlib import Path

import pytest

from ttlaunch.backend.observation import Observation
from ttlaunch.base.errors import DamagedFile
from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.inputs.schema import Direction, EvaluationConfig, PruningConfig, RungUnit
from ttlaunch.monitor.poll_failures import Containment
from ttlaunch.monitor.pruning import Arrival, Pruning, judge, point_of, score_of
from ttlaunch.monitor.state_changes import apply_state
from ttlaunch.records.jobs_file import JobKind, JobRecord, RungDecision, TrainingProgress, load_state, save_state
from ttlaunch.records.ledger import Ledger
from ttlaunch.records.pruning_report import hours_saved, pruning_section
from ttlaunch.scheduler.states import JobState
from ttlaunch.submit.selection import select_jobs
from ttlaunch.submit.sweep_jobs import JobSpec

from support import Recorder

STEPS = PruningConfig(enabled=True, rungs=[2, 4], unit=RungUnit.steps)


def test_points_reaching_a_rung_together_keep_the_best_third_and_later_ones_are_ranked_among_all():
    arrivals = [Arrival(f"p{index}", loss, (f"p{index}",)) for index, loss in enumerate([5, 1, 4, 9, 2, 8, 3, 7, 6])]
    decisions = judge([], arrivals, 1, STEPS, "t")
    assert sorted(decision.point for decision in decisions if decision.kept) == ["p1", "p4", "p6"]  # losses 1, 2, 3
    assert {decision.point: (decision.rank, decision.reached) for decision in decisions}["p3"] == (9, 9)
    # A tenth point is ranked among the nine: 10 // 3 = 3 go on, and 2.5 is third.
    late = judge(decisions, [Arrival("p9", 2.5, ("p9",))], 1, STEPS, "t")[0]
    assert (late.rank, late.reached, late.kept) == (3, 10, True)


def test_fewer_points_than_min_points_all_go_on_and_a_score_is_better_higher():
    settings = PruningConfig(enabled=True, metric="task/acc", min_points=3)
    first = judge([], [Arrival("a", 0.1, ("a",)), Arrival("b", 0.9, ("b",))], 1, settings, "t")
    assert [decision.kept for decision in first] == [True, True]
    third = judge(first, [Arrival("c", 0.5, ("c",))], 1, settings, "t")[0]
    assert (third.rank, third.kept) == (2, False)  # higher is better: b, c, a; one of three goes on
    lower = judge(first, [Arrival("c", 0.05, ("c",))], 1, PruningConfig(metric="task/acc", direction=Direction.minimize), "t")[0]
    assert (lower.rank, lower.kept) == (1, True)


def test_the_few_left_to_reach_a_rung_after_one_judged_with_enough_are_ranked_as_the_rest():
    """Nine points reach rung 1 as seven and then two: two go on of the seven, none of the two
    late ones. The two at rung 2 are fewer than min_points, but only because the others were
    stopped at rung 1: one of them goes on, as with three there."""
    settings = PruningConfig(enabled=True, rungs=[1, 2], min_points=3)
    first = judge([], [Arrival(f"p{index}", float(index), (f"p{index}",)) for index in range(7)], 1, settings, "t")
    late = judge(first, [Arrival("p7", 7.0, ("p7",)), Arrival("p8", 8.0, ("p8",))], 1, settings, "t")
    assert [decision.point for decision in [*first, *late] if decision.kept] == ["p0", "p1"]
    arrivals = [Arrival("p0", 0.5, ("p0",)), Arrival("p1", 0.2, ("p1",))]
    assert [decision.kept for decision in judge([], arrivals, 2, settings, "t", few_ranked=True)] == [False, True]
    assert [decision.kept for decision in judge([], arrivals, 2, settings, "t")] == [True, True], "a sweep of two points"


def test_a_point_is_its_job_name_without_the_replicate_part():
    assert point_of("lr1e-3__seed-2", "seed") == "lr1e-3"
    assert point_of("r8__lr-0.1__seed--1", "seed") == "r8__lr-0.1"
    assert point_of("r8__seedling-1", "seed") == "r8__seedling-1"
    assert point_of("r8", "seed") == "r8"


def test_a_score_is_the_scorers_first_metric_but_stderr_or_the_one_named():
    metrics = {"match/stderr": 0.05, "match/accuracy": 0.95, "f1/mean": 0.5}
    assert score_of(metrics, "match") == 0.95
    assert score_of(metrics, "f1/mean") == 0.5
    assert score_of(metrics, "other") is None


def _command_sweep(tmp_path: Path, losses: dict[str, list[float]]) -> Ledger:
    """Training jobs of a command payload whose metrics.jsonl holds `losses` (one per step)."""
    ledger = Ledger.open(tmp_path, "x")
    ledger.state.payload_kind, ledger.state.metrics_jsonl = PayloadKind.command, "metrics.jsonl"
    for index, (name, values) in enumerate(losses.items()):
        _job(ledger, tmp_path, name, index, values)
    return ledger


def _job(ledger: Ledger, tmp_path: Path, name: str, index: int, losses: list[float]) -> JobRecord:
    output = tmp_path / name / "outputs"
    output.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"step": step, "loss": loss}) for step, loss in enumerate(losses, 1)]
    (output / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))
    record = JobRecord(
        name=name, run_name=name.split("__")[0], job_id=str(100 + index), status=JobState.RUNNING, output_dir=str(output),
        job_dir=str(tmp_path / name), training=TrainingProgress(steps_done=len(losses), steps_total=8, step_time_s=30.0),
    )
    ledger.state.jobs[name] = record
    return record


def test_points_behind_at_a_rung_are_stopped_once_and_a_resumed_monitor_decides_nothing_again(tmp_path: Path):
    # Rung 2 (steps 1-2); a, b, c reach it; d has logged one step only.
    ledger = _command_sweep(tmp_path, {"a": [3, 1], "b": [3, 2], "c": [4, 3], "d": [9]})
    recorder = Recorder(ledger)
    pruning = Pruning(STEPS, EvaluationConfig(), ledger, recorder)
    pruning.after_poll(Containment(ledger.events, tmp_path))
    decisions = {decision.point: decision for decision in ledger.state.rungs}
    assert sorted(decisions) == ["a", "b", "c"]
    assert [decisions[point].kept for point in "abc"] == [True, False, False]
    assert decisions["a"].measure == 2.0 and decisions["c"].measure == 3.5  # the mean since the last rung
    assert recorder.cancelled == ["b", "c"]
    assert ledger.state.jobs["b"].pruned_at == 2 and ledger.state.jobs["a"].pruned_at is None
    assert "PRUNING" in ledger.events.path.read_text()

    # The records, as a monitor that resumes reads them: d arrives; nobody is judged again.
    saved = load_state(ledger.state_path, "x", tmp_path)
    assert saved.rungs == ledger.state.rungs and saved.jobs["b"].pruned_at == 2
    resumed = Ledger.open(tmp_path, "x")
    again = Recorder(resumed)
    with (tmp_path / "d" / "outputs" / "metrics.jsonl").open("a") as file:
        file.write(json.dumps({"step": 2, "loss": 0.5}) + "\n")
    resumed.state.jobs["d"].training.steps_done = 2
    Pruning(STEPS, EvaluationConfig(), resumed, again).after_poll(Containment(resumed.events, tmp_path))
    assert [(decision.point, decision.rank, decision.reached, decision.kept) for decision in resumed.state.rungs[3:]] == [
        ("d", 4, 4, False)  # mean(9, 0.5) = 4.75, last of 4; 4 // 3 = 1 goes on
    ]
    assert again.cancelled == ["d"]


def test_replicates_are_judged_together_by_their_mean_once_each_has_its_measure(tmp_path: Path):
    ledger = _command_sweep(tmp_path, {
        "p__seed-1": [1, 1], "p__seed-2": [5],  # the mean of p waits for seed 2
        "q__seed-1": [2, 2], "q__seed-2": [2, 2], "r__seed-1": [4, 4], "r__seed-2": [4, 4],
    })
    recorder = Recorder(ledger)
    pruning = Pruning(STEPS, EvaluationConfig(), ledger, recorder)
    pruning.after_poll(Containment(ledger.events, tmp_path))
    assert ledger.state.rungs == [] and recorder.cancelled == []  # fewer than 3 there, and p on its way: all train on
    with (tmp_path / "p__seed-2" / "outputs" / "metrics.jsonl").open("a") as file:
        file.write(json.dumps({"step": 2, "loss": 5}) + "\n")
    ledger.state.jobs["p__seed-2"].training.steps_done = 2
    pruning.after_poll(Containment(ledger.events, tmp_path))
    decisions = {decision.point: decision for decision in ledger.state.rungs}
    p = decisions["p"]
    assert (p.point, p.measure, p.jobs, p.rank, p.kept) == ("p", 3.0, ["p__seed-1", "p__seed-2"], 2, False)  # q 2, p 3, r 4
    assert decisions["q"].kept and not decisions["r"].kept
    assert sorted(recorder.cancelled) == ["p__seed-1", "p__seed-2", "r__seed-1", "r__seed-2"]


def test_too_few_points_at_a_rung_wait_for_the_others_and_go_on_once_no_other_can_reach_it(tmp_path: Path):
    ledger = _command_sweep(tmp_path, {"a": [3, 1], "b": [3, 2], "c": [9]})
    recorder = Recorder(ledger)
    pruning = Pruning(STEPS, EvaluationConfig(), ledger, recorder)
    pruning.after_poll(Containment(ledger.events, tmp_path))
    assert ledger.state.rungs == []  # c trains on towards the rung
    ledger.state.jobs["c"].status = JobState.FAILED  # it never will
    pruning.after_poll(Containment(ledger.events, tmp_path))
    assert [(decision.point, decision.kept) for decision in ledger.state.rungs] == [("a", True), ("b", True)]
    assert recorder.cancelled == []


def test_a_score_at_an_epoch_rung_is_its_evaluation_of_the_rungs_checkpoint(tmp_path: Path):
    settings = PruningConfig(enabled=True, rungs=[1], metric="capitalize/match", min_points=2, eta=2)
    ledger = Ledger.open(tmp_path, "x")
    ledger.state.payload_kind = PayloadKind.torchtune
    for index, (name, accuracy) in enumerate([("good", 0.9), ("bad", 0.2)]):
        output = tmp_path / name / "outputs"
        (output / "epoch_0").mkdir(parents=True)
        (output / "epoch_0" / "adapter_config.json").write_text("{}")
        status = JobState.RUNNING if name == "bad" else JobState.COMPLETED  # good trained to the end meanwhile
        ledger.state.jobs[name] = JobRecord(name=name, run_name=name, job_id=str(index), status=status, output_dir=str(output))
        ledger.state.jobs[f"{name}/epoch0"] = JobRecord(  # the checkpoint's job, of both its tasks
            name=f"{name}/epoch0", run_name=name, kind=JobKind.EVALUATION, job_id=f"e{index}", status=JobState.RUNNING,
            tasks=["other", "capitalize"],
        )
    recorder = Recorder(ledger)
    pruning = Pruning(settings, EvaluationConfig(), ledger, recorder)
    pruning.after_poll(Containment(ledger.events, tmp_path))
    assert ledger.state.rungs == []  # the evaluations still run
    for name, accuracy in [("bad", 0.2), ("good", 0.9)]:
        evaluation = ledger.state.jobs[f"{name}/epoch0"]
        evaluation.status = JobState.COMPLETED
        evaluation.scores = {"other": {"metrics": {"match/accuracy": 0.5}}, "capitalize": {"metrics": {"match/accuracy": accuracy}}}
        pruning.after_poll(Containment(ledger.events, tmp_path))
        if name == "bad":  # one point there, and good's score to come though its training ended
            assert ledger.state.rungs == []
    assert [(decision.point, decision.measure, decision.kept) for decision in ledger.state.rungs] == [("good", 0.9, True), ("bad", 0.2, False)]
    assert recorder.cancelled == ["bad"]


def test_a_pruned_jobs_end_is_pruned_not_cancelled_and_has_no_cause(tmp_path: Path):
    record = JobRecord(name="r", job_id="1", status=JobState.RUNNING, pruned_at=1, stopped_by_ttlaunch=True)
    entries = apply_state(record, Observation(JobState.CANCELLED, completed="2026-12-07 10:00:00"))
    assert record.status is JobState.PRUNED and record.cause is None
    assert ("Pruned at", "rung 1") in entries[0][2]
    finished = JobRecord(name="f", job_id="2", status=JobState.RUNNING, pruned_at=1)
    apply_state(finished, Observation(JobState.COMPLETED))
    assert finished.status is JobState.COMPLETED  # it ended before the cancel landed


def test_a_launch_leaves_pruned_runs_while_pruning_is_on_and_resumes_them_with_it_off():
    jobs = [JobSpec("a", ()), JobSpec("b", ())]
    records = {"a": JobRecord(name="a", job_id="1", status=JobState.PRUNED), "b": JobRecord(name="b", job_id="2", status=JobState.COMPLETED)}
    on = select_jobs(jobs, records, resubmit_failed=True)
    assert (on.submit, on.pruned, on.completed) == ([], ["a"], ["b"])
    off = select_jobs(jobs, records, resubmit_failed=False, resume_pruned=True)
    assert ([job.name for job in off.submit], off.unpruned) == (["a"], ["a"])


def test_the_summary_has_the_rung_table_and_the_hours_the_pruned_runs_did_not_train(tmp_path: Path):
    ledger = Ledger.open(tmp_path, "x")
    gpus = {"compute": {"gpus_per_node": 2, "nodes": 1}}
    ledger.state.jobs["a"] = JobRecord(name="a", job_id="1", status=JobState.COMPLETED, elapsed_s=3600, submitted_with=gpus)
    ledger.state.jobs["b"] = JobRecord(
        name="b", job_id="2", status=JobState.PRUNED, elapsed_s=1800, pruned_at=1, submitted_with=gpus,
        training=TrainingProgress(steps_done=100, steps_total=300, step_time_s=9.0),
    )
    ledger.state.pruning = "Successive halving on loss"
    ledger.state.rungs = [
        RungDecision("a", 1, 0.5, 1, 2, True, ["a"], "t"), RungDecision("b", 1, 0.9, 2, 2, False, ["b"], "t"),
    ]
    saved, used, unit = hours_saved(ledger.state)
    assert (saved, used, unit) == (pytest.approx(200 * 9 * 2 / 3600), 3.0, "GPU")
    text = "\n".join(pruning_section(ledger.state))
    assert "| b | 1 | 0.9 | 2 of 2 | pruned |" in text and "| a | 1 | 0.5 | 1 of 2 | kept |" in text
    assert "Stopping 1 runs early saved about 1 GPU-hours" in text and "the sweep used 3 GPU-hours" in text


def test_a_damaged_decision_in_jobs_json_is_said(tmp_path: Path):
    ledger = Ledger.open(tmp_path, "x")
    ledger.state.rungs = [RungDecision("a", 1, 0.5, 1, 2, True, ["a"], "t")]
    save_state(ledger.state_path, ledger.state)
    data = json.loads(ledger.state_path.read_text())
    data["rungs"][0]["kept"] = "yes"
    ledger.state_path.write_text(json.dumps(data))
    with pytest.raises(DamagedFile, match="rungs holds"):
        load_state(ledger.state_path, "x", tmp_path)
