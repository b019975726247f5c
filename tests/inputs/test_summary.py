from pathlib import Path

import pytest

from ttlaunch.errors import InputError
from ttlaunch.inputs.summary import RunType, load_summary_file, parse_experiment

SEEDS_SHAPE = {
    "experiment": {"name": "cap_4L_lora_lr_sweep"},
    "runs": [
        {"name": "rank8_lr1e-5", "type": "Fine-tuned", "lora_rank": 8, "lr": 1e-5},
        {"name": "rank16_lr1e-5", "type": "fine-tuned", "lora_rank": 16, "lr": 1e-5},
        {"name": "base", "type": "Control"},
        {"name": "zero_shot", "type": "eval-only"},
    ],
}

# cruijff_kit's experiment_summary.yaml, as its design skill writes it.
CRUIJFF_SHAPE = """
experiment:
  name: "workflow_test_2026-03-16"
  question: "Do both LoRA ranks work?"
  date: "2026-03-16"
  directory: "{directory}"
tools: {{preparation: torchtune, evaluation: inspect-ai}}
variables:
  lora_rank: [4, 8]
controls:
  system_prompt: "You are a helpful assistant."
  epochs: 1
  batch_size: 4
models:
  base:
    - {{name: Llama-3.2-1B-Instruct, path: /models/Llama-3.2-1B-Instruct, size_gb: 2.5}}
data:
  training: {{path: /data/words.json, label: words, format: json}}
runs:
  - name: "Llama-3.2-1B-Instruct_rank4"
    type: "fine-tuned"
    model: "Llama-3.2-1B-Instruct"
    parameters: {{lora_rank: 4}}
  - name: "Llama-3.2-1B-Instruct_rank8"
    type: "fine-tuned"
    model: "Llama-3.2-1B-Instruct"
    parameters: {{lora_rank: 8}}
  - name: "Llama-3.2-1B-Instruct_base"
    type: "control"
    model: "Llama-3.2-1B-Instruct"
    parameters: {{}}
evaluation:
  tasks:
    - {{name: capitalization, script: inspect_task.py, temperature: 0.0}}
  matrix:
    - {{run: "Llama-3.2-1B-Instruct_rank4", tasks: [capitalization], epochs: [0]}}
    - {{run: "Llama-3.2-1B-Instruct_base", tasks: [capitalization], epochs: null}}
"""


def test_seeds_shape_types_are_case_insensitive_and_parameters_flat():
    experiment = parse_experiment(SEEDS_SHAPE, "summary.yaml")
    assert experiment.name == "cap_4L_lora_lr_sweep"
    assert [run.type for run in experiment.runs] == [
        RunType.FINE_TUNED, RunType.FINE_TUNED, RunType.CONTROL, RunType.EVAL_ONLY,
    ]
    assert [run.name for run in experiment.fine_tuned] == ["rank8_lr1e-5", "rank16_lr1e-5"]
    assert experiment.run("rank8_lr1e-5").parameters == {"lora_rank": 8, "lr": 1e-5}
    assert experiment.directory is None


def test_cruijff_shape_loads_with_models_controls_and_evaluation(tmp_path: Path):
    path = tmp_path / "experiment_summary.yaml"
    path.write_text(CRUIJFF_SHAPE.format(directory=tmp_path), encoding="utf-8")
    (tmp_path / "inspect_task.py").write_text("# an inspect task file\n")
    experiment = load_summary_file(path)
    assert experiment.directory == tmp_path
    assert [run.name for run in experiment.fine_tuned] == ["Llama-3.2-1B-Instruct_rank4", "Llama-3.2-1B-Instruct_rank8"]
    rank4 = experiment.run("Llama-3.2-1B-Instruct_rank4")
    assert rank4.model == "Llama-3.2-1B-Instruct" and rank4.parameters == {"lora_rank": 4}
    assert experiment.controls["epochs"] == 1
    (task,) = experiment.evaluation_tasks
    assert (task.name, task.script, task.settings) == ("capitalization", tmp_path / "inspect_task.py", {"temperature": 0.0})
    assert task.reference == f"{tmp_path / 'inspect_task.py'}@capitalization"
    assert experiment.evaluation_matrix[0].epochs == (0,)
    assert experiment.evaluation_matrix[1].epochs == ()


def test_summary_file_named_experiment_summary_is_its_own_scaffold(tmp_path: Path):
    path = tmp_path / "experiment_summary.yaml"
    path.write_text("experiment: {name: x}\nruns: [{name: a, type: fine-tuned}]\n", encoding="utf-8")
    assert load_summary_file(path).directory == tmp_path


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ([1, 2], "(top level)", "mapping"),
        ({"runs": []}, "experiment", "missing"),
        ({"experiment": {"name": "x"}}, "runs", "missing"),
        ({"experiment": {"name": "x"}, "runs": []}, "runs", "non-empty"),
        ({"experiment": {"name": "x"}, "runs": [{"name": "a", "type": "trained"}]}, "runs[0].type", "unknown run type"),
        ({"experiment": {"name": "x"}, "runs": [{"name": "a"}]}, "runs[0].type", "missing"),
        ({"experiment": {"name": "x"}, "runs": [{"name": "../x", "type": "control"}]}, "runs[0].name", "not a safe name"),
        ({"experiment": {"name": "x"}, "runs": [{"name": "a;rm", "type": "control"}]}, "runs[0].name", "not a safe name"),
        ({"experiment": {"name": "x"}, "runs": [{"name": "..", "type": "control"}]}, "runs[0].name", "not a safe name"),
        ({"experiment": {"name": "a/b"}, "runs": [{"name": "a", "type": "control"}]}, "experiment.name", "not a safe name"),
        (
            {"experiment": {"name": "x"}, "runs": [{"name": "a", "type": "control"}, {"name": "a", "type": "control"}]},
            "runs[1].name",
            "duplicate",
        ),
        (
            {"experiment": {"name": "x"}, "runs": [{"name": "a", "type": "fine-tuned", "lr": [1, 2]}]},
            "runs[0].lr",
            "single value",
        ),
        (
            {"experiment": {"name": "x"}, "runs": [{"name": "a", "type": "fine-tuned", "lr": 1, "parameters": {"lr": 2}}]},
            "runs[0].lr",
            "twice",
        ),
        (
            {
                "experiment": {"name": "x"},
                "runs": [{"name": "a", "type": "fine-tuned"}],
                "evaluation": {"matrix": [{"run": "b", "tasks": [], "epochs": [0]}]},
            },
            "evaluation.matrix[0].run",
            "not a run",
        ),
    ],
)
def test_bad_summaries_name_the_file_and_field(data, field, words):
    with pytest.raises(InputError) as caught:
        parse_experiment(data, "my_summary.yaml")
    assert caught.value.source == "my_summary.yaml"
    assert caught.value.field == field
    assert words in caught.value.message


def test_malformed_yaml_names_file_and_line(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("experiment:\n  name: x\nruns: [\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_summary_file(path)
    assert caught.value.source == str(path)
    assert caught.value.field.startswith("line 4")
    assert "malformed YAML" in caught.value.message
