"""torchtune's built-in recipes and configs, and which of them train on how many devices.

Read from the installed torchtune without importing it (importing it means importing torch):
its built-in configs are YAML files in the `recipes/configs/` directory it installs. Recipes
and configs come in pairs by name: `lora_finetune_single_device` / `lora_finetune_distributed`,
`llama3_2/1B_lora_single_device` / `llama3_2/1B_lora`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Sequence

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from yaml import YAMLError

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


def recipe_arguments(argv: Sequence[str]) -> list[str] | None:
    """What a `tune run ... --config <config> key=value ...` command gives its recipe:
    `--config <file>` (a built-in config name as its file) and the overrides; None without
    a config."""
    items = list(argv)
    if "--config" not in items[:-1]:
        return None
    at = items.index("--config")
    return ["--config", str(builtin_config_file(items[at + 1]) or items[at + 1]), *items[at + 2:]]


def tune_config(argv: Sequence[str]) -> Any | None:  # a YAML document
    """The config a `tune run ... --config <config> key=value ...` command trains with: its
    file (or built-in) with the overrides merged as torchtune merges them (`~key` removes a
    key; `key=x` on a component sets its `_component_`; `None` is null). None when the config
    cannot be read here (not written yet, or not YAML). Read without importing torchtune."""
    arguments = recipe_arguments(argv)
    if arguments is None:
        return None
    _, config, *overrides = arguments
    try:
        loaded = OmegaConf.to_container(OmegaConf.load(config), resolve=False)
    except (OSError, YAMLError, OmegaConfBaseException):
        return None
    if not isinstance(loaded, dict):
        return None
    dotlist = []
    for item in overrides:
        key, _, value = item.partition("=")
        if key.startswith("~"):
            parent, _, leaf = key[1:].rpartition(".")
            target = _walk(loaded, parent)
            if isinstance(target, dict):
                target.pop(leaf, None)
            continue
        if isinstance(loaded.get(key), dict) and "_component_" in loaded[key]:
            key += "._component_"
        dotlist.append(f"{key}={'!!null' if value == 'None' else value}")
    try:
        return OmegaConf.merge(OmegaConf.create(loaded), OmegaConf.from_dotlist(dotlist))
    except OmegaConfBaseException:
        return None


def _walk(data: Any, dotpath: str) -> Any:  # a YAML document
    """The value at a dotted path of nested dicts; None where the path leads nowhere."""
    for part in dotpath.split(".") if dotpath else []:
        data = data.get(part) if isinstance(data, dict) else None
    return data


def model_dir(argv: Sequence[str]) -> str | None:
    """The checkpoint_dir a `tune run` command trains from; None when that cannot be known
    here."""
    config = tune_config(argv)
    try:  # scaffolds interpolate it (`${models_dir}/...`), as torchtune resolves it
        value = OmegaConf.select(config, "checkpointer.checkpoint_dir", default=None) if config is not None else None
    except OmegaConfBaseException:  # an interpolation only the recipe can resolve
        return None
    return value if isinstance(value, str) else None


# Where a torchtune recipe saves the config it ran with, in its output dir.
SAVED_CONFIG_NAME = "torchtune_config.yaml"


def _saved_mapping(saved_config: bytes) -> dict[str, object] | None:
    try:
        saved = yaml.safe_load(saved_config)
    except Exception:  # YAMLError, and the ValueError of a date like 2026-13-45 (found by fuzzing)
        return None
    return saved if isinstance(saved, dict) else None


def _whole(value: object) -> int | None:
    return value if type(value) is int and value > 0 else None


def batch_and_accumulation(saved_config: bytes) -> tuple[int, int] | None:
    """`batch_size` and `gradient_accumulation_steps` (1 when unset) of a saved torchtune
    config; None without a positive whole batch size."""
    saved = _saved_mapping(saved_config)
    size = _whole(saved.get("batch_size")) if saved is not None else None
    if saved is None or size is None:
        return None
    return size, _whole(saved.get("gradient_accumulation_steps")) or 1


def epochs_and_step_cap(saved_config: Path) -> tuple[int | None, int | None]:
    """`epochs` and `max_steps_per_epoch` of a run's saved config; None for either when the
    file is not there (yet) or does not say."""
    try:
        saved = _saved_mapping(saved_config.read_bytes())
    except OSError:
        return None, None
    if saved is None:
        return None, None
    return _whole(saved.get("epochs")), _whole(saved.get("max_steps_per_epoch"))


def metric_logger(saved_config: Path) -> str | None:
    """The `_component_` of a run's saved `metric_logger` (torchtune's DiskLogger, WandBLogger,
    ...); None when the file is not there (yet) or does not say."""
    try:
        saved = _saved_mapping(saved_config.read_bytes())
    except OSError:
        return None
    logger = saved.get("metric_logger") if saved is not None else None
    component = logger.get("_component_") if isinstance(logger, dict) else None
    return component if isinstance(component, str) else None
