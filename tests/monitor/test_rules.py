"""Rules: parsing the monitoring config, and the engine on recorded job output."""

from pathlib import Path

import pytest

from ttlaunch.base.errors import InputError
from ttlaunch.inputs.rulebook import FileExists, FollowUpAction, MaxAttempts, parse_rules
from ttlaunch.monitor.evaluations import checkpoint_ready
from ttlaunch.monitor.poll_failures import Containment
from ttlaunch.monitor.rules import RulesEngine
from ttlaunch.records.jobs_file import JobRecord
from ttlaunch.records.ledger import Ledger
from ttlaunch.scheduler.states import JobState

from support import REPO, Recorder

TORCHTUNE_SAVE = (
    "Adapter checkpoint of size 0.00 GiB saved to /s/r/outputs/epoch_1/adapter_model.pt\n"
)
CHECKPOINT_RULE = {
    "log_events": [{
        "name": "epoch_saved",
        "pattern": r"Adapter checkpoint of size .* saved to (?P<dir>\S+)/epoch_(?P<epoch>\d+)/adapter_model\.pt",
        "actions": [
            {"type": "log", "message": "epoch {epoch} of {run_name} in {dir}"},
            {"type": "follow_up", "name": "{run_name}_cooldown_{epoch}", "overrides": ["++payload.extra_overrides=[epochs=1]"],
             "conditions": [{"type": "file_exists", "path": "{dir}/epoch_{epoch}/done", "blocking": True, "timeout_s": 30}]},
        ],
    }],
}


def poll(engine: RulesEngine) -> None:
    """What the monitor does with the engine after each poll."""
    engine.after_poll(Containment(engine.ledger.events, engine.ledger.sweep_dir))


def test_rules_parse_into_typed_actions_and_conditions():
    rules = parse_rules(CHECKPOINT_RULE, "monitoring=x")
    (event,) = rules.log_events
    assert event.match(TORCHTUNE_SAVE.strip()) == {"dir": "/s/r/outputs", "epoch": "1"}
    assert event.match("Recipe checkpoint of size 0.00 GiB saved") is None
    follow_up = event.actions[1]
    assert isinstance(follow_up, FollowUpAction) and follow_up.conditions == (FileExists("{dir}/epoch_{epoch}/done", True, 30.0),)


@pytest.mark.parametrize(
    ("rules", "field", "message"),
    [
        ({"log_events": [{"name": "x", "pattern": "(", "actions": [{"type": "log", "message": "m"}]}]},
         "monitoring.log_events[0].pattern", "not a regular expression"),
        ({"log_events": [{"name": "x", "pattern": "a", "actions": [{"type": "log", "message": "{nope}"}]}]},
         "monitoring.log_events[0].actions[0]", "unknown placeholder(s) ['nope']"),
        ({"state_events": [{"name": "x", "state": "EXPLODED", "actions": [{"type": "cancel"}]}]},
         "monitoring.state_events[0].state", "unknown state(s) ['EXPLODED']"),
        ({"state_events": [{"name": "x", "state": "FAILED", "actions": [{"type": "command", "command": "rm -rf /"}]}]},
         "monitoring.state_events[0].actions[0].command", "never a shell string"),
        ({"state_events": [{"name": "x", "state": "FAILED", "actions": [{"type": "reboot"}]}]},
         "monitoring.state_events[0].actions[0].type", "unknown action 'reboot'"),
        ({"log_events": [{"name": "x", "pattern": "a", "actions": [{"type": "log", "message": "m", "when": 1}]}]},
         "monitoring.log_events[0].actions[0]", "unknown key(s) ['when']"),
    ],
)
def test_bad_rules_are_one_clear_error_naming_the_field(rules, field, message):
    with pytest.raises(InputError) as caught:
        parse_rules(rules, "monitoring=mine")
    assert caught.value.source == "monitoring=mine" and caught.value.field == field and message in caught.value.message


def sweep_with_job(tmp_path: Path, output: str = "", **fields) -> tuple[Ledger, Path]:
    ledger = Ledger.open(tmp_path, "exp")
    log = tmp_path / "r.out"
    log.write_text(output)
    ledger.state.jobs["r"] = JobRecord(name="r", run_name="r", job_id="7", status="RUNNING", stdout=str(log), **fields)
    return ledger, log


def test_a_blocking_condition_queues_the_action_until_its_file_exists_and_it_fires_once(tmp_path: Path):
    ledger, log = sweep_with_job(tmp_path, "partial line without newline")
    recorder = Recorder(ledger)
    engine = RulesEngine(parse_rules(CHECKPOINT_RULE, "m"), ledger, recorder)
    poll(engine)
    assert recorder.submitted == [] and not engine.pending
    log.write_text("partial line without newline\n" + TORCHTUNE_SAVE.replace("/s/r/outputs", str(tmp_path)))
    poll(engine)
    events = ledger.events.path.read_text()
    assert f"Message: epoch 1 of r in {tmp_path}" in events and "ACTION_QUEUED: r" in events
    assert recorder.submitted == [] and engine.pending, "waiting for the file"
    (tmp_path / "epoch_1").mkdir()
    (tmp_path / "epoch_1" / "done").write_text("")
    poll(engine)
    assert recorder.submitted == [("r_cooldown_1", "r", "r", ["++payload.extra_overrides=[epochs=1]"])]

    # A new monitor of the same sweep (a re-launch) re-reads nothing and repeats nothing.
    log.write_text(log.read_text() + TORCHTUNE_SAVE.replace("/s/r/outputs", str(tmp_path)))  # the same line again
    again = RulesEngine(parse_rules(CHECKPOINT_RULE, "m"), ledger, Recorder(ledger))
    poll(again)
    assert again.capabilities.submitted == []


def test_a_blocking_condition_gives_up_after_its_timeout(tmp_path: Path):
    clock = [1000.0]
    ledger, _ = sweep_with_job(tmp_path, TORCHTUNE_SAVE)
    recorder = Recorder(ledger)
    engine = RulesEngine(parse_rules(CHECKPOINT_RULE, "m"), ledger, recorder, now=lambda: clock[0])
    poll(engine)
    clock[0] += 31
    poll(engine)
    assert recorder.submitted == [] and not engine.pending
    assert "Result: skipped: /s/r/outputs/epoch_1/done does not exist after 30 s" in ledger.events.path.read_text()


RESTARTS = {
    "state_events": [
        {"name": "crash", "state": ["crash"], "actions": [{"type": "restart", "conditions": [{"type": "max_attempts", "max": 3}]}]},
        {"name": "oom", "state": ["OUT_OF_MEMORY"], "actions": [{"type": "restart"}]},
        {"name": "oom_halving", "state": ["OUT_OF_MEMORY"], "actions": [
            {"type": "restart", "on_oom": "halve_batch_size", "max_oom_restarts": 1}]},
    ],
}


def test_a_crash_restarts_while_attempts_remain(tmp_path: Path):
    rules = parse_rules({"state_events": RESTARTS["state_events"][:1]}, "m")
    ledger, _ = sweep_with_job(tmp_path, exit_code="1:0")
    recorder = Recorder(ledger)
    engine = RulesEngine(rules, ledger, recorder)
    for _ in range(3):
        record = ledger.state.jobs["r"]
        record.status, record.exit_code = "FAILED", "1:0"
        engine.on_transition("r", record, JobState.RUNNING, JobState.FAILED)
        poll(engine)
    assert len(recorder.submitted) == 2 and ledger.state.jobs["r"].previous_job_ids == ["7", "new1"]
    assert "skipped: 3 attempts (max_attempts 3)" in ledger.events.path.read_text()


def test_out_of_memory_restarts_only_when_asked_and_then_with_half_the_batch_and_twice_the_accumulation(tmp_path: Path):
    output = tmp_path / "outputs"
    output.mkdir()
    (output / "torchtune_config.yaml").write_text("batch_size: 8\nepochs: 2\n")
    ledger, _ = sweep_with_job(tmp_path, output_dir=str(output))
    recorder = Recorder(ledger)
    engine = RulesEngine(parse_rules({"state_events": RESTARTS["state_events"][1:2]}, "m"), ledger, recorder)
    ledger.state.jobs["r"].status = JobState.OUT_OF_MEMORY
    engine.on_transition("r", ledger.state.jobs["r"], JobState.RUNNING, JobState.OUT_OF_MEMORY)
    poll(engine)
    assert recorder.submitted == []
    assert "not restarted after OUT_OF_MEMORY (on_oom=never)" in ledger.events.path.read_text()

    halving = RulesEngine(parse_rules({"state_events": RESTARTS["state_events"][2:]}, "m"), ledger, recorder)
    halving.on_transition("r", ledger.state.jobs["r"], JobState.RUNNING, JobState.OUT_OF_MEMORY)
    poll(halving)
    assert recorder.submitted == [("r", "r", "r", ["++payload.extra_overrides=['batch_size=4','gradient_accumulation_steps=2']"])]
    restart = ledger.state.jobs["r"].restarts[0]
    assert restart["after"] == "OUT_OF_MEMORY" and (restart["batch"], restart["accumulation"]) == ([8, 4], [1, 2])


def test_max_attempts_any_and_not_combine(tmp_path: Path):
    from ttlaunch.monitor.conditions import Subject, judge

    parsed = parse_rules({"state_events": [{"name": "x", "state": "FAILED", "actions": [{"type": "cancel", "conditions": [
        {"type": "any", "conditions": [{"type": "glob_exists", "pattern": str(tmp_path / "*.nothing")},
                                      {"type": "metadata", "key": "kind", "equals": "checkpoint"}]},
        {"type": "not", "condition": {"type": "max_attempts", "max": 1}},
        {"type": "command", "command": ["true"]},
    ]}]}]}, "m")
    conditions = parsed.state_events[0].actions[0].conditions
    first_attempt = Subject({"kind": "checkpoint"}, waited_s=0, attempts=1)
    assert judge(conditions, first_attempt) == ("yes", "")
    assert judge([MaxAttempts(1)], first_attempt) == ("no", "1 attempts (max_attempts 1)")


@pytest.mark.parametrize("choice", ["none", "auto_restart", "cooldown_single", "cooldown_multi", "hf_conversion_eval"])
def test_every_shipped_monitoring_config_is_valid(compose_config, choice):
    from ttlaunch.inputs.launch_inputs import read_inputs

    cfg = compose_config("experiment=demo", f"monitoring={choice}")
    rules = read_inputs(cfg, cfg.hydra).rules
    assert rules.empty is (choice == "none")


def test_the_cooldown_example_matches_torchtunes_own_line():
    from omegaconf import OmegaConf

    from ttlaunch.inputs.launch_inputs import read_rules

    example = REPO / "configs" / "monitoring" / "cooldown_single.yaml"
    (event,) = read_rules(OmegaConf.load(example), str(example)).log_events
    line = "Adapter checkpoint of size 0.00 GiB saved to /w/r/outputs/epoch_1/adapter_model.pt"
    assert event.match(line) == {"kind": "checkpoint", "output": "/w/r/outputs", "epoch": "1"}


def test_the_evaluation_matrix_becomes_named_targets_with_their_commands(tmp_path: Path):
    from ttlaunch.inputs.evaluation_plan import EvaluationTarget, evaluation_command, planned_evaluations
    from ttlaunch.inputs.schema import EvaluationConfig
    from ttlaunch.inputs.summary import parse_experiment

    experiment = parse_experiment({
        "experiment": {"name": "e"},
        "runs": [
            {"name": "r8", "type": "fine-tuned"}, {"name": "r16", "type": "fine-tuned"},
            {"name": "base", "type": "control", "model": "tiny"},
        ],
        "models": {"base": [{"name": "tiny", "path": "/models/tiny"}]},
        "evaluation": {"tasks": [{"name": "cap"}, {"name": "acc"}], "matrix": [
            {"run": "r8", "tasks": ["cap", "acc"], "epochs": [0, 1]}, {"run": "base", "tasks": ["cap"], "epochs": None}]},
    }, "e.yaml")
    targets = planned_evaluations(experiment, {"r8": "r8", "r16": "r16"})
    # The control's base model is evaluated too, as it is: what the fine-tuned runs are measured against.
    assert {t.job_name: t.tasks for t in targets} == {
        "r8/epoch0": ("cap", "acc"), "r8/epoch1": ("cap", "acc"), "base/model": ("cap",),
    }, "one job per checkpoint, its tasks in the matrix's order"
    assert experiment.given_model(experiment.run("base")) == Path("/models/tiny")

    config = EvaluationConfig()
    target = EvaluationTarget("r8", ("cap",), 1, "r8", named_by_task=True)
    command = evaluation_command(config, target, tmp_path / "r8" / "outputs", tmp_path / "r8" / "cap" / "epoch1")
    assert command.argv == (
        "inspect", "eval", "cap", "--model", f"hf/{tmp_path}/r8/outputs/epoch_1", "--log-dir", f"{tmp_path}/r8/cap/epoch1/outputs",
    )
    assert not checkpoint_ready(config, target, tmp_path / "r8" / "outputs")
    (tmp_path / "r8" / "outputs" / "epoch_1").mkdir(parents=True)
    (tmp_path / "r8" / "outputs" / "epoch_1" / "adapter_config.json").write_text("{}")
    assert checkpoint_ready(config, target, tmp_path / "r8" / "outputs")
    # cruijff_kit's post step moves a merged save's adapter files aside right after training.
    stashed = tmp_path / "r8" / "outputs" / "epoch_1" / "adapter_weights"
    stashed.mkdir()
    (tmp_path / "r8" / "outputs" / "epoch_1" / "adapter_config.json").rename(stashed / "adapter_config.json")
    assert checkpoint_ready(config, target, tmp_path / "r8" / "outputs")


def test_a_job_silent_for_inactive_s_fires_once_and_cancel_reaches_the_launcher(tmp_path: Path):
    import os

    ledger, log = sweep_with_job(tmp_path, "working\n")
    os.utime(log, (1000.0, 1000.0))
    recorder = Recorder(ledger)
    rules = parse_rules({"state_events": [{"name": "stalled", "inactive_s": 600, "actions": [
        {"type": "log", "message": "{job_name} silent"}, {"type": "cancel"}]}]}, "m")
    clock = [1500.0]
    engine = RulesEngine(rules, ledger, recorder, now=lambda: clock[0])
    poll(engine)
    assert recorder.cancelled == [], "quiet for 500 s only"
    clock[0] = 1700.0
    poll(engine)
    poll(engine)
    assert recorder.cancelled == ["r"]
    text = ledger.events.path.read_text()
    assert text.count("Message: r silent") == 1 and "Result: job 7 cancelled" in text
