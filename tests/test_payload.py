from pathlib import Path

import pytest

from ttlaunch.errors import InputError
from ttlaunch.payload import build_payload
from ttlaunch.schema import PayloadConfig
from ttlaunch.summary import parse_experiment

KEY_MAP = {"lora_rank": "model.lora_rank", "lr": "optimizer.lr", "epochs": "epochs", "batch_size": "batch_size"}


def experiment(directory=None, **run_fields):
    data = {
        "experiment": {"name": "x", **({"directory": str(directory)} if directory else {})},
        "controls": {"epochs": 2, "system_prompt": "hi"},
        "runs": [{"name": "r8", "type": "fine-tuned", "lora_rank": 8, "lr": 1e-5, **run_fields}],
    }
    return parse_experiment(data, "x.yaml")


def test_torchtune_command_maps_parameters_and_controls(tmp_path: Path):
    payload = PayloadConfig(base_config="/cfg/base.yaml", key_map=KEY_MAP, overrides=["device=cpu"])
    exp = experiment()
    command = build_payload(exp, exp.run("r8"), payload, tmp_path / "r8", "payload=torchtune")
    assert command.argv == (
        "tune", "run", "lora_finetune_single_device", "--config", "/cfg/base.yaml",
        f"output_dir={tmp_path / 'r8' / 'outputs'}", "epochs=2", "model.lora_rank=8", "optimizer.lr=1e-05", "device=cpu",
    )
    assert command.output_dir == tmp_path / "r8" / "outputs"
    assert command.env["TTLAUNCH_RUN_NAME"] == "r8"


def test_run_parameters_win_over_controls(tmp_path: Path):
    exp = experiment(epochs=5)
    command = build_payload(exp, exp.run("r8"), PayloadConfig(base_config="b", key_map=KEY_MAP), tmp_path, "p")
    assert "epochs=5" in command.argv and "epochs=2" not in command.argv


def test_dotted_parameters_pass_through_and_unknown_ones_are_an_error(tmp_path: Path):
    exp = experiment(**{"optimizer.betas": "x"})
    command = build_payload(exp, exp.run("r8"), PayloadConfig(base_config="b", key_map=KEY_MAP), tmp_path, "p")
    assert "optimizer.betas=x" in command.argv
    exp = experiment(dropout_magic=0.1)
    with pytest.raises(InputError) as caught:
        build_payload(exp, exp.run("r8"), PayloadConfig(base_config="b", key_map=KEY_MAP), tmp_path, "p")
    assert caught.value.source == "x.yaml" and caught.value.field == "runs.r8.dropout_magic"


def test_scaffolded_run_uses_its_own_finetune_yaml(tmp_path: Path):
    (tmp_path / "r8").mkdir()
    (tmp_path / "r8" / "finetune.yaml").write_text("output_dir: /scratch/ck-out-r8\nepochs: 1\n", encoding="utf-8")
    exp = experiment(directory=tmp_path)
    command = build_payload(exp, exp.run("r8"), PayloadConfig(key_map=KEY_MAP), tmp_path / "job", "p")
    assert command.argv == ("tune", "run", "lora_finetune_single_device", "--config", str(tmp_path / "r8" / "finetune.yaml"))
    assert command.output_dir == Path("/scratch/ck-out-r8")


def test_missing_scaffold_config_names_the_path(tmp_path: Path):
    exp = experiment(directory=tmp_path)
    with pytest.raises(InputError) as caught:
        build_payload(exp, exp.run("r8"), PayloadConfig(key_map=KEY_MAP), tmp_path / "job", "p")
    assert str(tmp_path / "r8" / "finetune.yaml") in caught.value.message


def test_generic_command_renders_placeholders_without_a_shell(tmp_path: Path):
    payload = PayloadConfig(
        kind="command", command=["python", "train.py", "--lr", "{lr}", "--epochs", "{epochs}", "--out", "{output_dir}"]
    )
    exp = experiment()
    command = build_payload(exp, exp.run("r8"), payload, tmp_path / "r8", "p")
    assert command.argv == (
        "python", "train.py", "--lr", "1e-05", "--epochs", "2", "--out", str(tmp_path / "r8" / "outputs")
    ), "controls are placeholders too"
    payload = PayloadConfig(kind="command", command=["echo", "{nope}"])
    with pytest.raises(InputError, match="unknown placeholder"):
        build_payload(exp, exp.run("r8"), payload, tmp_path, "p")


def test_a_typo_in_controls_is_an_error_and_other_tools_controls_are_not_passed(tmp_path: Path):
    from ttlaunch.payload import unpassed_controls

    data = {"experiment": {"name": "x"}, "controls": {"batch_sz": 4}, "runs": [{"name": "r8", "type": "fine-tuned"}]}
    exp = parse_experiment(data, "x.yaml")
    with pytest.raises(InputError) as caught:
        build_payload(exp, exp.run("r8"), PayloadConfig(base_config="b", key_map=KEY_MAP), tmp_path, "p")
    assert (caught.value.source, caught.value.field) == ("x.yaml", "controls.batch_sz")
    assert "did you mean 'batch_size'?" in caught.value.message
    exp = experiment()  # controls: epochs and cruijff_kit's system_prompt
    command = build_payload(exp, exp.run("r8"), PayloadConfig(base_config="b", key_map=KEY_MAP), tmp_path, "p")
    assert not any("system_prompt" in item or item.startswith("hi") for item in command.argv)
    assert unpassed_controls(exp, PayloadConfig(key_map=KEY_MAP)) == ["system_prompt"]


def test_a_control_or_command_line_parameter_the_command_does_not_use_is_an_error(tmp_path: Path):
    exp = experiment()
    payload = PayloadConfig(kind="command", command=["python", "train.py", "--lr", "{lr}"])
    with pytest.raises(InputError) as caught:
        build_payload(exp, exp.run("r8"), payload, tmp_path, "p")
    assert (caught.value.source, caught.value.field) == ("x.yaml", "controls.epochs")
    with_epochs = PayloadConfig(kind="command", command=["python", "train.py", "--epochs", "{epochs}"])
    with pytest.raises(InputError) as caught:
        build_payload(exp, exp.run("r8"), with_epochs, tmp_path, "p", command_line=["seed"])
    assert (caught.value.source, caught.value.field) == ("command line", "+seed")


def test_a_relative_program_that_does_not_exist_is_an_error(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exp = experiment()
    payload = PayloadConfig(kind="command", command=["./train.sh", "{epochs}"])
    with pytest.raises(InputError) as caught:
        build_payload(exp, exp.run("r8"), payload, tmp_path / "r8", "p")
    assert caught.value.field == "payload.command[0]" and "./train.sh does not exist" in caught.value.message
    (tmp_path / "train.sh").write_text("#!/bin/sh\n")
    assert build_payload(exp, exp.run("r8"), payload, tmp_path / "r8", "p").argv[0] == "./train.sh"
