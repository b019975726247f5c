from pathlib import Path

import pytest

from ttlaunch.base.errors import InputError
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
  training: {{path: /data/words.json, dataset_label: words, format: json}}
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


# Every field of cruijff_kit's design template (claude_skills/design-experiment/templates/
# experiment_summary.yaml), with values of this project's own.
CRUIJFF_TEMPLATE_SHAPE = """
experiment:
  name: words_rank_sweep
  project: capitalization
  question: Does the LoRA rank change accuracy?
  date: "2026-12-01"
  hypothesis: Rank 8 is enough.
  purpose: A template test.
  dir: "{directory}"
tools: {{preparation: torchtune, evaluation: inspect-ai}}
variables: {{lora_rank: [4, 8]}}
controls:
  system_prompt: ""
  prompt: "Capitalize: {{input}}\\n"
  dataset_type: chat_completion
  epochs: 1
  batch_size: 4
  gradient_accumulation_steps: 1
  validation_during_training: false
  seed: 14
models:
  base:
    - {{name: Tiny, path: /models/tiny, size_gb: 0.1}}
data:
  training:
    path: /data/words.json
    dataset_label: words
    format: json
    size_kb: 2
    splits: {{train: 8, validation: 2, test: 2}}
  data_generation:
    tool: model_organism
    name: words
    input_type: letters
    rule: upper
    k: 5
    N: 12
    design: memorization
    output_path: data/words.json
output: {{wandb_project: sweeps}}
runs:
  - name: tiny_rank4
    type: fine-tuned
    model: Tiny
    parameters: {{lora_rank: 4}}
    training_condition: plain
    compute: {{time: "1:30:00", gpus: 1, mem: 40G}}
  - {{name: tiny_base, type: control, model: Tiny, parameters: {{}}}}
  - {{name: tiny_old, type: eval-only, model: Tiny, parameters: {{checkpoint_path: /ckpt/epoch_0}}}}
evaluation:
  temperature: 0.5
  do_sample: true
  seed: 7
  max_tokens: 6
  max_connections: 8
  scorers:
    - {{name: match, params: {{location: exact}}}}
  tasks:
    - name: capitalization
      script: inspect_task.py
      description: Capitalizes a word
      dataset: same
      prompt: "Please capitalize: {{input}}\\n"
      system_prompt: Be brief.
      assistant_prefix: "Answer: "
  compute: {{time: "0:20:00", gpus: 1, mem: 16G}}
  matrix:
    - {{run: tiny_rank4, vis_label: rank4, tasks: [capitalization], epochs: [0]}}
    - {{run: tiny_base, vis_label: base, tasks: [capitalization], epochs: null}}
    - {{run: tiny_old, tasks: [capitalization], epochs: null}}
"""


def test_every_field_of_cruijffs_template_is_accepted_and_the_unused_are_listed(tmp_path: Path):
    path = tmp_path / "experiment_summary.yaml"
    path.write_text(CRUIJFF_TEMPLATE_SHAPE.format(directory=tmp_path), encoding="utf-8")
    (tmp_path / "inspect_task.py").write_text("# an inspect task file\n")
    experiment = load_summary_file(path)
    assert experiment.not_used == (
        "experiment.project", "experiment.question", "experiment.date", "experiment.hypothesis", "experiment.purpose",
        "tools.preparation", "tools.evaluation", "variables", "models.base[].size_gb", "data.training.dataset_label",
        "data.training.format", "data.training.size_kb", "data.training.splits", "data.data_generation",
        "output.wandb_project", "evaluation.tasks[].description", "runs[].training_condition",
    )
    rank4 = experiment.run("tiny_rank4")
    assert rank4.parameters == {"lora_rank": 4}  # training_condition is not a parameter
    assert rank4.compute == {"timeout_min": 90, "gpus_per_node": 1, "mem_gb": 40.0}
    assert experiment.run("tiny_old").checkpoint_path == Path("/ckpt/epoch_0")
    assert experiment.base_models == {"Tiny": Path("/models/tiny")}
    assert experiment.training_data == Path("/data/words.json")
    (task,) = experiment.evaluation_tasks
    assert (task.dataset, task.prompt, task.assistant_prefix) == ("same", "Please capitalize: {input}\n", "Answer: ")
    assert task.settings == {"system_prompt": "Be brief."}
    settings = experiment.evaluation_settings
    assert (settings.temperature, settings.do_sample, settings.seed, settings.max_tokens, settings.max_connections) == (
        0.5, True, 7, 6, 8,
    )
    assert settings.scorers == ({"name": "match", "params": {"location": "exact"}},)
    assert settings.compute == {"timeout_min": 20, "gpus_per_node": 1, "mem_gb": 16.0}
    assert [cell.vis_label for cell in experiment.evaluation_matrix] == ["rank4", "base", None]


@pytest.mark.parametrize(
    ("change", "field", "hint"),
    [
        ({"experiment": {"name": "x", "hypotesis": "typo"}}, "experiment.hypotesis", "'hypothesis'"),
        ({"evaluaton": {}}, "evaluaton", "'evaluation'"),
        ({"evaluation": {"tasks": [{"name": "t", "datset": "same"}]}}, "evaluation.tasks[0].datset", "'dataset'"),
        ({"evaluation": {"matrix": [{"run": "a", "tasks": [], "epochs": [0], "vis_lable": "a"}]}},
         "evaluation.matrix[0].vis_lable", "'vis_label'"),
        ({"models": {"base": [{"name": "m", "path": "/m", "size": 1}]}}, "models.base[0].size", "'size_gb'"),
    ],
)
def test_a_key_no_format_has_is_an_error_with_the_closest_known_key(change, field, hint):
    data = {"experiment": {"name": "x"}, "runs": [{"name": "a", "type": "fine-tuned"}], **change}
    with pytest.raises(InputError) as caught:
        parse_experiment(data, "my_summary.yaml")
    assert caught.value.field == field
    assert f"did you mean {hint}" in caught.value.message


@pytest.mark.parametrize(("text", "minutes"), [("59", 59), ("0:59:00", 59), ("30:30", 31), ("1-2", 1560), ("2-0:30:00", 2910)])
def test_sbatch_times_read_as_minutes(text, minutes):
    from ttlaunch.inputs.sbatch_values import time_minutes

    assert time_minutes(text) == minutes


@pytest.mark.parametrize(("text", "gb"), [("80G", 80.0), ("512M", 0.5), ("2048", 2.0), ("1T", 1024.0), ("lots", None)])
def test_sbatch_memory_reads_as_gigabytes(text, gb):
    from ttlaunch.inputs.sbatch_values import memory_gb

    assert memory_gb(text) == gb


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"runs": [{"name": "a", "type": "fine-tuned"}, {"name": "c", "type": "control", "model": "M"}]},
         "runs[1].model", "not in models.base"),
        ({"runs": [{"name": "a", "type": "fine-tuned"}, {"name": "c", "type": "eval-only"}]},
         "runs[1].parameters.checkpoint_path", "eval-only run is evaluated on it"),
    ],
)
def test_a_run_evaluated_as_given_needs_a_model(change, field, words):
    data = {
        "experiment": {"name": "x"}, **change,
        "evaluation": {"tasks": [{"name": "t"}], "matrix": [{"run": "c", "tasks": ["t"], "epochs": None}]},
    }
    with pytest.raises(InputError) as caught:
        parse_experiment(data, "my_summary.yaml")
    assert (caught.value.field, words in caught.value.message) == (field, True)


def test_a_task_on_the_training_data_needs_the_training_data_named():
    data = {
        "experiment": {"name": "x"}, "runs": [{"name": "a", "type": "fine-tuned"}],
        "evaluation": {"tasks": [{"name": "t", "dataset": "same"}]},
    }
    with pytest.raises(InputError) as caught:
        parse_experiment(data, "my_summary.yaml")
    assert caught.value.field == "evaluation.tasks[0].dataset" and "data.training.path" in caught.value.message
