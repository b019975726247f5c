"""torchtune's built-in recipes and configs, and which of them train on how many devices.

Read from the installed torchtune without importing it (importing it means importing torch):
its built-in configs are YAML files in the `recipes/configs/` directory it installs. Recipes
and configs come in pairs by name: `lora_finetune_single_device` / `lora_finetune_distributed`,
`llama3_2/1B_lora_single_device` / `llama3_2/1B_lora`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

SINGLE_DEVICE = "_single_device"
DISTRIBUTED = "_distributed"
DEFAULT_RECIPE = "lora_finetune_single_device"


def builtin_configs_dir() -> Path | None:
    """Where the installed torchtune keeps its built-in configs; None without torchtune."""
    spec = importlib.util.find_spec("recipes")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / "configs"
        if (candidate / "llama3_2").is_dir():  # torchtune's, not another package called recipes
            return candidate
    return None


def is_builtin_name(config: str) -> bool:
    """`llama3_2/1B_lora`: a config name, not a file (no .yaml, and not a path that exists)."""
    return not config.endswith((".yaml", ".yml")) and not Path(config).exists()


def builtin_config_file(config: str) -> Path | None:
    """The YAML file of a built-in config name; None when torchtune is not installed here or
    has no such config."""
    directory = builtin_configs_dir()
    if directory is None or not is_builtin_name(config):
        return None
    path = directory / f"{config}.yaml"
    return path if path.is_file() else None


def is_single_device(recipe: str) -> bool:
    return recipe.endswith(SINGLE_DEVICE)


def distributed_recipe(recipe: str) -> str:
    """lora_finetune_single_device -> lora_finetune_distributed (others as they are)."""
    return recipe[: -len(SINGLE_DEVICE)] + DISTRIBUTED if is_single_device(recipe) else recipe


def distributed_config(config: str) -> str | None:
    """The multi-device counterpart of a single-device built-in config name
    (llama3_2/1B_lora_single_device -> llama3_2/1B_lora); None when it has none. Files and
    names without the suffix are their own counterpart."""
    if not is_builtin_name(config) or not config.endswith(SINGLE_DEVICE):
        return config
    counterpart = config[: -len(SINGLE_DEVICE)]
    if builtin_configs_dir() is not None and builtin_config_file(counterpart) is None:
        return None
    return counterpart


def model_dir(argv: Sequence[str]) -> str | None:
    """The checkpoint_dir a `tune run` command trains from: its own override, else what its
    config says (a built-in's or a file's); None when that cannot be known here."""
    import yaml

    for item in reversed(argv):
        if item.startswith("checkpointer.checkpoint_dir="):
            return item.split("=", 1)[1]
    if "--config" not in argv[:-1]:
        return None
    config = argv[list(argv).index("--config") + 1]
    path = builtin_config_file(config) or Path(config)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):  # written later (by a setup command), or not ours to judge
        return None
    checkpointer = data.get("checkpointer") if isinstance(data, dict) else None
    value = checkpointer.get("checkpoint_dir") if isinstance(checkpointer, dict) else None
    return value if isinstance(value, str) and "${" not in value else None
