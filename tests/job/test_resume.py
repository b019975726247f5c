"""Where an attempt starts (from disk), and what SLURM's end warning does in the job."""

import json
import signal
from pathlib import Path

import pytest

from ttlaunch.inputs.payload_command import PayloadCommand
from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.job.job_payloads import attempt_command, job_payload
from ttlaunch.job.requeue import EndWarning, RequeuePolicy, current_attempt, read_requeues
from ttlaunch.job.resume import ResumeAction, decide, decide_torchtune, saved_epochs


@pytest.mark.parametrize(
    ("epochs", "recipe_state", "action"),
    [
        ([], None, ResumeAction.FRESH),  # interrupted during epoch 0
        ([0], (1, 2), ResumeAction.RESUME),  # epoch 0 of 2 saved
        ([0, 1], (2, 3), ResumeAction.RESUME),
        ([0, 1], (1, 2), ResumeAction.FINISHED),  # final epoch saved; the recipe state is stale
        ([0], None, ResumeAction.FINISHED),  # epochs=1: the only epoch is the final one
        ([0, 1, 2], (2, 3), ResumeAction.FINISHED),
    ],
)
def test_the_decision_follows_torchtunes_checkpoints(epochs, recipe_state, action):
    assert decide(epochs, recipe_state).action is action


def torchtune_output(tmp_path: Path, epochs: list[int], recipe_state: tuple[int, int] | None) -> Path:
    import torch

    output = tmp_path / "outputs"
    for epoch in epochs:
        (output / f"epoch_{epoch}").mkdir(parents=True)
        (output / f"epoch_{epoch}" / "adapter_model.pt").write_bytes(b"weights")
    (output / "epoch_9").mkdir(parents=True)  # an epoch whose save was cut short: ignored
    if recipe_state is not None:
        (output / "recipe_state").mkdir()
        epochs_run, total = recipe_state
        torch.save({"epochs_run": epochs_run, "total_epochs": total, "optimizer": {}}, output / "recipe_state" / "recipe_state.pt")
    return output


def test_recipe_state_on_disk_is_read(tmp_path: Path):
    output = torchtune_output(tmp_path, [0], (1, 2))
    assert saved_epochs(output) == [0]
    decision = decide_torchtune(output)
    assert (decision.action, decision.newest_epoch) == (ResumeAction.RESUME, 0)
    assert "resuming at epoch 1 of 2" in decision.reason


def test_a_finished_run_whose_adapters_cruijff_kits_post_step_moved_aside_is_finished_not_trained_again(tmp_path: Path):
    output = torchtune_output(tmp_path, [0, 1], (1, 2))
    for epoch in (0, 1):
        stashed = output / f"epoch_{epoch}" / "adapter_weights"
        stashed.mkdir()
        (output / f"epoch_{epoch}" / "adapter_model.pt").rename(stashed / "adapter_model.pt")
    assert saved_epochs(output) == [0, 1]
    decision = decide_torchtune(output)
    assert (decision.action, decision.newest_epoch) == (ResumeAction.FINISHED, 1)


@pytest.mark.parametrize(
    "damage",
    [b"", b"not a pickle", "cut short", {"epochs_run": "one", "total_epochs": 2}, {"epochs_run": 3, "total_epochs": 2}, {}],
)
def test_a_recipe_state_nobody_can_read_trains_again_rather_than_failing_or_skipping(tmp_path: Path, damage):
    import torch

    output = torchtune_output(tmp_path, [0], (1, 2))
    path = output / "recipe_state" / "recipe_state.pt"
    if damage == "cut short":
        path.write_bytes(path.read_bytes()[:40])
    elif isinstance(damage, bytes):
        path.write_bytes(damage)
    else:
        torch.save(damage, path)
    decision = decide_torchtune(output)
    assert decision.action is ResumeAction.FRESH and "training again from the start" in decision.reason
    assert str(path) in decision.reason


def prepare_attempt(command: PayloadCommand, kind: str, attempt: int) -> PayloadCommand | None:
    """What the job does in a job of one task: decide from disk, then build the command."""
    ways = job_payload(PayloadKind(kind))
    return attempt_command(command, ways, attempt, ways.resume_state(command, attempt))


def command(output: Path, argv=("tune", "run", "lora", "--config", "c.yaml")) -> PayloadCommand:
    output.mkdir(parents=True, exist_ok=True)
    return PayloadCommand(argv=tuple(argv), env={"A": "1"}, output_dir=output)


def test_torchtune_resumes_with_its_flag_and_a_finished_run_is_not_trained_again(tmp_path: Path):
    resumed = prepare_attempt(command(torchtune_output(tmp_path / "r", [0], (1, 2))), "torchtune", attempt=2)
    assert resumed is not None and resumed.argv[-1] == "resume_from_checkpoint=True"
    assert resumed.env == {"A": "1", "TTLAUNCH_ATTEMPT": "2", "TTLAUNCH_RESUME": "1"}
    assert prepare_attempt(command(torchtune_output(tmp_path / "f", [0, 1], (1, 2))), "torchtune", attempt=1) is None
    fresh = prepare_attempt(command(tmp_path / "new" / "outputs"), "torchtune", attempt=1)
    assert fresh is not None and "resume_from_checkpoint=True" not in fresh.argv and fresh.env["TTLAUNCH_RESUME"] == "0"


def test_other_payloads_are_told_the_attempt_and_whether_earlier_work_is_there(tmp_path: Path):
    output = tmp_path / "outputs"
    first = prepare_attempt(command(output, ("train.sh",)), "command", attempt=1)
    assert first is not None and first.env["TTLAUNCH_RESUME"] == "0" and first.argv == ("train.sh",)
    (output / "step_100.ckpt").write_text("")
    later = prepare_attempt(command(output, ("train.sh",)), "command", attempt=3)
    assert later is not None and (later.env["TTLAUNCH_ATTEMPT"], later.env["TTLAUNCH_RESUME"]) == ("3", "1")


def test_the_attempt_counts_slurms_restarts():
    assert current_attempt({}) == 1
    assert current_attempt({"SLURM_RESTART_COUNT": "2"}) == 3


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def warning(tmp_path: Path, max_num_timeout: int, clock: Clock, actions: list) -> EndWarning:
    policy = RequeuePolicy(max_num_timeout=max_num_timeout, grace_s=30, time_limit_s=3600, signal_delay_s=120)
    handler = EndWarning(tmp_path, "42", 1, policy, requeue=lambda job_id: actions.append(("requeue", job_id)), clock=clock)
    handler.attach(lambda grace: actions.append(("stop", grace)))
    return handler


def test_an_early_warning_is_a_preemption_the_payload_saves_and_the_job_is_requeued(tmp_path: Path):
    clock, actions = Clock(), []
    handler = warning(tmp_path, max_num_timeout=0, clock=clock, actions=actions)
    clock.now = 600  # ten minutes into a one-hour job
    handler(signal.SIGUSR2, None)
    assert actions == [], "the signal handler only decides"
    with pytest.raises(SystemExit, match="requeued \\(preempted\\)"):
        handler.act()
    assert actions == [("stop", 30), ("requeue", "42")], "the payload stops before the job is requeued"
    assert [(entry.attempt, entry.reason) for entry in read_requeues(tmp_path)] == [(1, "preempted")]


def test_timeouts_are_requeued_up_to_max_num_timeout_then_the_job_runs_on(tmp_path: Path):
    clock, actions = Clock(), []
    handler = warning(tmp_path, max_num_timeout=1, clock=clock, actions=actions)
    clock.now = 3600 - 120
    handler(signal.SIGUSR2, None)
    with pytest.raises(SystemExit, match="requeued \\(timeout\\)"):
        handler.act()
    actions.clear()
    handler.requested = None  # as in the next attempt's handler
    handler(signal.SIGUSR2, None)  # the second timeout: no more requeues
    handler.act()
    assert actions == [], "nothing stopped, nothing requeued"
    assert [entry["reason"] for entry in json.loads((tmp_path / "requeues.json").read_text())] == ["timeout"]


def test_a_warning_before_the_payload_started_requeues_at_once_and_counts_the_same_budget(tmp_path: Path):
    clock, requeued = Clock(), []
    policy = RequeuePolicy(max_num_timeout=1, grace_s=30, time_limit_s=3600, signal_delay_s=120)
    handler = EndWarning(tmp_path, "42", 2, policy, requeue=requeued.append, clock=clock)
    clock.now = 3600 - 100  # still preparing when the time limit nears
    with pytest.raises(SystemExit, match="requeued \\(timeout\\)"):
        handler(signal.SIGUSR2, None)
    assert requeued == ["42"] and [(entry.attempt, entry.reason) for entry in read_requeues(tmp_path)] == [(2, "timeout")]
    handler(signal.SIGUSR2, None)  # the budget of one timeout is spent: the job runs on
    assert requeued == ["42"]


@pytest.mark.cli
def test_a_real_warning_stops_a_real_payload_and_requeues_without_deadlock(tmp_path: Path):
    import os
    import subprocess
    import threading
    import time

    from ttlaunch.job.task import finish_command, stop_command

    payload = subprocess.Popen(["sleep", "60"])
    requeued = []
    policy = RequeuePolicy(max_num_timeout=0, grace_s=5, time_limit_s=3600, signal_delay_s=120)
    handler = EndWarning(tmp_path, "42", 1, policy, requeue=requeued.append)
    handler.attach(lambda grace_s: stop_command(payload, grace_s))
    previous = signal.signal(signal.SIGUSR2, handler)
    try:
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGUSR2)).start()
        began = time.monotonic()
        with pytest.raises(SystemExit):
            finish_command(payload, "r1", handler.act)
        assert time.monotonic() - began < 5
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert payload.returncode == -signal.SIGTERM and requeued == ["42"]


def test_merged_weights_beside_an_adapter_load_through_links_without_the_adapter(tmp_path):
    from ttlaunch.records.checkpoints import loadable

    merged = tmp_path / "epoch_0"
    merged.mkdir()
    for name in ("model.safetensors", "config.json", "tokenizer.model", "adapter_config.json", "adapter_model.pt"):
        (merged / name).write_text(name)
    view = loadable(merged, tmp_path / "job" / "checkpoint")
    assert view == tmp_path / "job" / "checkpoint"
    assert sorted(path.name for path in view.iterdir()) == ["config.json", "model.safetensors", "tokenizer.model"]
    assert (view / "model.safetensors").read_text() == "model.safetensors"
    assert loadable(merged, view) == view, "a requeued attempt finds its links made"
    adapter_only = tmp_path / "epoch_1"
    adapter_only.mkdir()
    for name in ("adapter_model.safetensors", "adapter_config.json", "config.json"):
        (adapter_only / name).write_text(name)
    assert loadable(adapter_only, tmp_path / "other") == adapter_only  # peft loads it on its base model
    assert not (tmp_path / "other").exists()
