"""A cruijff_kit experiment scaffolded by cruijff_kit's own `setup_finetune.py` (from
`../shared/upstream/cruijff_kit`), with only model and device substitutions for a CPU:

* the base model is a tiny random Llama 2 (ttlaunch's demo model, with a chat template so
  cruijff's chat dataset and inspect's chat formatting work), under the name cruijff_kit
  knows the model by (`Llama-3.2-1B-Instruct`) and its own dir (`tiny-llama2`);
* each run's generated `finetune.yaml` gets that model's torchtune component, tokenizer and
  checkpointer model type, and fewer steps; everything else, `finetune.slurm` included, is
  as cruijff_kit wrote it.

The design and the data are this project's own (cruijff_kit's format, not its files).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support import REPO

UPSTREAM = REPO.parent / "shared" / "upstream" / "cruijff_kit"
MODEL_NAME = "Llama-3.2-1B-Instruct"  # the name setup_finetune.py's model table knows
MODEL_DIR = "tiny-llama2"
TASK_SCRIPT = UPSTREAM / "blueprints" / "capitalization" / "inspect_task.py"
# A chat template (Llama 2's [INST] form). The answer follows `]` directly: a space there
# would tokenize differently with and without the answer, which cruijff's chat dataset refuses.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}<<SYS>> {{ message['content'] }} <</SYS>> "
    "{% elif message['role'] == 'user' %}[INST] {{ message['content'] }} [/INST]"
    "{% else %}{{ message['content'] }}{{ eos_token }}{% endif %}"
    "{% endfor %}"
)
WORDS = ["apple", "peach", "lemon", "grape", "melon", "mango", "berry", "plums", "olive", "guava", "cocoa", "dates"]


def available() -> bool:
    return (UPSTREAM / "src" / "tools" / "torchtune" / "setup_finetune.py").is_file()


def use_cruijff_kit(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Jobs launched from here import cruijff_kit (its recipe, dataset, post step) as its users'
    environment does, and log to WandB offline."""
    monkeypatch.setenv("PYTHONPATH", python_path(root))
    monkeypatch.setenv("WANDB_MODE", "offline")


def python_path(root: Path) -> str:
    """A dir where `cruijff_kit` imports as cruijff_kit's pyproject maps it (its src/)."""
    packages = root / "packages"
    packages.mkdir(parents=True, exist_ok=True)
    link = packages / "cruijff_kit"
    if not link.exists():
        link.symlink_to(UPSTREAM / "src")
    return str(packages)


def build_model(models_dir: Path) -> Path:
    from ttlaunch.job import demo_assets

    model = models_dir / MODEL_DIR
    assets = demo_assets.build(models_dir.parent / "demo_assets")
    shutil.copytree(assets.parent / "model", model)
    config_path = model / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = CHAT_TEMPLATE
    config_path.write_text(json.dumps(config, indent=1))
    return model


def write_data(path: Path, train_rows: int = 8) -> None:
    """The words, split as cruijff_kit's datasets are; `train_rows` above 8 adds made-up words
    to the training split (epochs that last seconds, to interrupt)."""
    rows = [{"input": word, "output": word.capitalize()} for word in WORDS]
    more = [{"input": f"w{index:04d}", "output": f"W{index:04d}"} for index in range(train_rows - 8)]
    path.write_text(json.dumps({"train": rows[:8] + more, "validation": rows[8:10], "test": rows[10:]}, indent=1))


def second_task(root: Path) -> dict:
    """A second evaluation task: cruijff_kit's capitalization task under another name, on
    other words (its own dataset, so its own task arguments)."""
    script = root / "ck-tasks" / "capitalization_more.py"
    script.parent.mkdir(parents=True)
    script.write_text(TASK_SCRIPT.read_text().replace("def capitalization(", "def capitalization_more("))
    data = root / "ck-data" / "words_more.json"
    more = [{"input": word, "output": word.capitalize()} for word in ("cherry", "lime", "kiwi")]
    data.write_text(json.dumps({"train": more, "validation": more, "test": more}))
    return {"name": "capitalization_more", "script": str(script), "dataset": str(data), "description": "Other words"}


def design(
    experiment_dir: Path, models_dir: Path, data: Path, runs: dict[str, int], epochs: int, more_tasks: tuple[dict, ...] = (),
) -> dict:
    """The experiment summary, as cruijff_kit's design skill writes it: fine-tuned runs by
    LoRA rank, each trained for `epochs` and evaluated at its last, and the base model as the
    control, on the capitalization task and `more_tasks`."""
    tasks = ["capitalization", *(task["name"] for task in more_tasks)]
    fine_tuned = [
        {"name": f"{MODEL_DIR}_{name}", "type": "fine-tuned", "model": MODEL_NAME, "parameters": {"lora_rank": rank}}
        for name, rank in runs.items()
    ]
    control = {"name": f"{MODEL_DIR}_base", "type": "control", "model": MODEL_NAME, "parameters": {}}
    return {
        "experiment": {
            "name": experiment_dir.name, "project": "capitalization", "question": "Does a LoRA rank matter?",
            "date": "2026-12-05", "hypothesis": "Both ranks learn the task.", "dir": str(experiment_dir),
        },
        "tools": {"preparation": "torchtune", "evaluation": "inspect-ai"},
        "variables": {"lora_rank": list(runs.values())},
        "controls": {
            "system_prompt": "", "prompt": "Capitalize: {input}\n", "dataset_type": "chat_completion",
            "epochs": epochs, "batch_size": 4, "gradient_accumulation_steps": 1, "validation_during_training": False,
        },
        "models": {"base": [{"name": MODEL_NAME, "path": str(models_dir / MODEL_DIR), "size_gb": 0.001}]},
        "data": {
            "training": {
                "path": str(data), "dataset_label": data.stem, "format": "json", "size_kb": 1,
                "splits": {"train": 8, "validation": 2, "test": 2},
            },
        },
        "output": {"wandb_project": "ttlaunch_tests"},
        "runs": [*fine_tuned, control],
        "evaluation": {
            "max_tokens": 4,
            "scorers": [{"name": "match"}],
            "tasks": [{
                "name": "capitalization", "script": str(TASK_SCRIPT), "dataset": "same",
                "description": "Capitalizes a word",
            }, *more_tasks],
            "matrix": [
                *({"run": run["name"], "vis_label": name, "tasks": tasks, "epochs": [epochs - 1]}
                  for run, name in zip(fine_tuned, runs)),
                {"run": control["name"], "vis_label": "base", "tasks": tasks, "epochs": None},
            ],
        },
    }


def setup_finetune(
    run_dir: Path, experiment_dir: Path, models_dir: Path, data: Path, rank: int, epochs: int, merged: bool, root: Path
) -> None:
    """cruijff_kit's setup_finetune.py in the run's dir (`merged`: its recipe saves merged
    weights too, not only the adapter), then the CPU substitutions."""
    run_dir.mkdir(parents=True)
    inputs = {
        "torchtune_model_name": MODEL_NAME, "model_checkpoint": MODEL_DIR,
        "project_dir": str(experiment_dir.parent), "experiment_name": experiment_dir.name,
        "input_dir_base": str(data.parent) + "/", "input_formatting": "", "models_dir": str(models_dir),
        "dataset_label": data.stem, "dataset_ext": ".json", "dataset_type": "chat_completion",
        "my_wandb_project": "ttlaunch_tests", "my_wandb_run_name": run_dir.name,
        "batch_size": 4, "epochs": epochs, "lora_rank": rank, "lr": 3e-3, "num_warmup_steps": 1,
        "system_prompt": "", "prompt": "Capitalize: {input}\n", "log_every_n_steps": 1,
        "time": "0:59:00", "gpus": 1, "conda_env": "cruijff", "save_adapter_weights_only": not merged,
    }
    (run_dir / "setup_finetune.yaml").write_text(yaml.safe_dump(inputs))
    env = {**os.environ, "PYTHONPATH": python_path(root), "USER": os.environ.get("USER", "root")}
    subprocess.run(
        [sys.executable, str(UPSTREAM / "src" / "tools" / "torchtune" / "setup_finetune.py")],
        cwd=run_dir, env=env, check=True, capture_output=True, text=True,
    )
    config_path = run_dir / "finetune.yaml"
    config = yaml.safe_load(config_path.read_text())
    from ttlaunch.job.demo_assets import MODEL_DIMS

    config["model"] = {
        "_component_": "torchtune.models.llama2.lora_llama2", "lora_attn_modules": ["q_proj", "v_proj"],
        "apply_lora_to_mlp": False, "apply_lora_to_output": False, **MODEL_DIMS,
        "lora_rank": rank, "lora_alpha": 2 * rank, "lora_dropout": 0.0,
    }
    config["tokenizer"] = {
        "_component_": "torchtune.models.llama2.llama2_tokenizer", "path": f"{models_dir / MODEL_DIR}/tokenizer.model",
        "max_seq_len": MODEL_DIMS["max_seq_len"],
    }
    config["checkpointer"]["model_type"] = "LLAMA2"
    config["optimizer"]["fused"] = False
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))


def scaffold(
    root: Path, runs: dict[str, int], epochs: int = 1, merged: bool = False, train_rows: int = 8, two_tasks: bool = False,
) -> Path:
    """The experiment dir of a scaffolded cruijff_kit experiment under `root`, its runs
    trained for `epochs` on `train_rows` rows, saving adapters only (cruijff_kit's default)
    or, `merged`, the merged weights too; `two_tasks`: each checkpoint evaluated on two tasks."""
    models_dir = root / "pretrained-llms"
    build_model(models_dir)
    data = root / "ck-data" / "words_5L.json"
    data.parent.mkdir(parents=True)
    write_data(data, train_rows)
    experiment_dir = root / "ck-projects" / "capitalization" / "cap_tiny"
    experiment_dir.mkdir(parents=True)
    summary = design(experiment_dir, models_dir, data, runs, epochs, (second_task(root),) if two_tasks else ())
    (experiment_dir / "experiment_summary.yaml").write_text(yaml.safe_dump(summary, sort_keys=False))
    for name, rank in runs.items():
        setup_finetune(experiment_dir / f"{MODEL_DIR}_{name}", experiment_dir, models_dir, data, rank, epochs, merged, root)
    return experiment_dir
