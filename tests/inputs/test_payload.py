import re
from pathlib import Path

import pytest

from ttlaunch.base.errors import InputError
from ttlaunch.inputs.payload import build_payload
from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.inputs.schema import ComputeConfig, PayloadConfig
from ttlaunch.inputs.summary import parse_experiment

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
    command = build_payload(exp, exp.run("r8"), payload, tmp_path / "r8", "payload=torchtune", compute=ComputeConfig(gpus_per_node=1))
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
    command = build_payload(exp, exp.run("r8"), PayloadConfig(key_map=KEY_MAP), tmp_path / "job", "p", compute=ComputeConfig(gpus_per_node=1))
    assert command.argv == ("tune", "run", "lora_finetune_single_device", "--config", str(tmp_path / "r8" / "finetune.yaml"))
    assert command.output_dir == Path("/scratch/ck-out-r8")
    on_two = build_payload(exp, exp.run("r8"), PayloadConfig(key_map=KEY_MAP), tmp_path / "job", "p", compute=ComputeConfig(gpus_per_node=2))
    assert on_two.argv[:6] == ("tune", "run", "--nproc_per_node", "2", "lora_finetune_distributed", "--config")
    assert on_two.argv[6] == str(tmp_path / "r8" / "finetune.yaml"), "a scaffold's own config, on any number of GPUs"


def test_missing_scaffold_config_names_the_path(tmp_path: Path):
    exp = experiment(directory=tmp_path)
    with pytest.raises(InputError) as caught:
        build_payload(exp, exp.run("r8"), PayloadConfig(key_map=KEY_MAP), tmp_path / "job", "p")
    assert str(tmp_path / "r8" / "finetune.yaml") in caught.value.message


def test_generic_command_renders_placeholders_without_a_shell(tmp_path: Path):
    payload = PayloadConfig(
        kind=PayloadKind.command, command=["python", "train.py", "--lr", "{lr}", "--epochs", "{epochs}", "--out", "{output_dir}"]
    )
    exp = experiment()
    command = build_payload(exp, exp.run("r8"), payload, tmp_path / "r8", "p")
    assert command.argv == (
        "python", "train.py", "--lr", "1e-05", "--epochs", "2", "--out", str(tmp_path / "r8" / "outputs")
    ), "controls are placeholders too"
    payload = PayloadConfig(kind=PayloadKind.command, command=["echo", "{nope}"])
    with pytest.raises(InputError, match="unknown placeholder"):
        build_payload(exp, exp.run("r8"), payload, tmp_path, "p")


def test_a_typo_in_controls_is_an_error_and_other_tools_controls_are_not_passed(tmp_path: Path):
    from ttlaunch.inputs.payload import unpassed_controls

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


def test_a_command_line_parameter_the_command_does_not_use_is_an_error_a_control_is_listed(tmp_path: Path):
    from ttlaunch.inputs.payload import unpassed_controls

    exp = experiment()  # controls: epochs, system_prompt
    payload = PayloadConfig(kind=PayloadKind.command, command=["python", "train.py", "--lr", "{lr}"])
    assert build_payload(exp, exp.run("r8"), payload, tmp_path, "p").argv[-1] == "1e-05"
    assert unpassed_controls(exp, payload) == ["epochs", "system_prompt"]
    with_epochs = PayloadConfig(kind=PayloadKind.command, command=["python", "train.py", "--epochs", "{epochs}"])
    assert unpassed_controls(exp, with_epochs) == ["system_prompt"]
    with pytest.raises(InputError) as caught:
        build_payload(exp, exp.run("r8"), with_epochs, tmp_path, "p", command_line=["seed"])
    assert (caught.value.source, caught.value.field) == ("command line", "+seed")


def test_a_relative_program_that_does_not_exist_is_an_error(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exp = experiment()
    payload = PayloadConfig(kind=PayloadKind.command, command=["./train.sh", "{epochs}"])
    with pytest.raises(InputError) as caught:
        build_payload(exp, exp.run("r8"), payload, tmp_path / "r8", "p")
    assert caught.value.field == "payload.command[0]" and "./train.sh does not exist" in caught.value.message
    (tmp_path / "train.sh").write_text("#!/bin/sh\n")
    assert build_payload(exp, exp.run("r8"), payload, tmp_path / "r8", "p").argv[0] == "./train.sh"


BUILT_IN = "llama3_2/1B_lora_single_device"


def test_the_gpu_count_picks_recipe_config_and_processes(tmp_path: Path):
    exp = experiment()
    payload = PayloadConfig(base_config=BUILT_IN, key_map=KEY_MAP)
    one = build_payload(exp, exp.run("r8"), payload, tmp_path, "p", compute=ComputeConfig(gpus_per_node=1)).argv
    assert one[:5] == ("tune", "run", "lora_finetune_single_device", "--config", BUILT_IN)
    four = build_payload(exp, exp.run("r8"), payload, tmp_path, "p", compute=ComputeConfig(gpus_per_node=4)).argv
    assert four[:7] == ("tune", "run", "--nproc_per_node", "4", "lora_finetune_distributed", "--config", "llama3_2/1B_lora")
    assert "device=cpu" not in four
    cpu = build_payload(exp, exp.run("r8"), payload, tmp_path, "p", compute=ComputeConfig(gpus_per_node=0)).argv
    assert cpu[2] == "lora_finetune_single_device" and cpu[5:8] == (f"output_dir={tmp_path / 'outputs'}", "device=cpu", "dtype=fp32")


@pytest.mark.parametrize(
    ("payload", "gpus", "field", "message"),
    [
        (PayloadConfig(recipe="lora_finetune_single_device", base_config=BUILT_IN), 4, "payload.recipe",
         "lora_finetune_single_device trains on one device, but compute.gpus_per_node is 4 on 1 node(s): use lora_finetune_distributed"),
        (PayloadConfig(recipe="lora_finetune_distributed", base_config="llama3_2/1B_lora"), 0, "payload.recipe",
         "lora_finetune_distributed needs GPUs"),
        (PayloadConfig(base_config="llama3_2/1B_qlora_single_device"), 2, "payload.base_config",
         "llama3_2/1B_qlora_single_device is a single-device config without a multi-device counterpart"),
    ],
)
def test_a_recipe_or_config_that_cannot_use_the_gpus_is_an_error_naming_both(tmp_path: Path, payload, gpus, field, message):
    pytest.importorskip("torchtune")  # its built-in configs say which counterparts exist
    exp = parse_experiment({"experiment": {"name": "x"}, "runs": [{"name": "r8", "type": "fine-tuned"}]}, "x.yaml")
    with pytest.raises(InputError) as caught:
        build_payload(exp, exp.run("r8"), payload, tmp_path, "payload=torchtune", compute=ComputeConfig(gpus_per_node=gpus))
    assert (caught.value.source, caught.value.field) == ("payload=torchtune", field)
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"pattern": "loss=(?P<loss>[\\d.]+"}, "payload.metrics.pattern: not a regular expression"),
        ({"pattern": "loss=(?P<loss>[\\d.]+)"}, "payload.metrics.pattern: needs a named group step"),
        ({"jsonl": "../elsewhere.jsonl"}, "payload.metrics.jsonl: '../elsewhere.jsonl': expected a path inside"),
    ],
)
def test_a_commands_metrics_sources_are_checked_before_anything_runs(tmp_path: Path, metrics, message):
    from ttlaunch.inputs.schema import TrainingMetricsConfig

    payload = PayloadConfig(kind=PayloadKind.command, command=["echo", "{output_dir}"], metrics=TrainingMetricsConfig(**metrics))
    exp = experiment()
    with pytest.raises(InputError, match=re.escape(message)):
        build_payload(exp, exp.run("r8"), payload, tmp_path, "p")
