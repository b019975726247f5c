"""Read ttlaunch's typed inputs out of a composed Hydra config, naming their sources.

Used in the launching process (to validate everything before anything is written) and in
the job (to build the payload), so both read the same things the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ttlaunch.errors import InputError
from ttlaunch.rules_config import Rules, parse_rules
from ttlaunch.schema import ComputeConfig, EvaluationConfig, PayloadConfig, RequeueConfig, UserConfig, typed, with_run_overrides
from ttlaunch.summary import SUMMARY_FILE_NAME, Experiment, parse_experiment

EXPERIMENT_DIRS_SCHEME = "ttlaunch-experiments"


@dataclass(frozen=True)
class LaunchInputs:
    experiment: Experiment
    compute: ComputeConfig
    requeue: RequeueConfig
    user: UserConfig
    payload: PayloadConfig
    compute_source: str
    payload_source: str
    rules: Rules = Rules()
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    def compute_for(self, run_name: str) -> ComputeConfig:
        """The compute preset as the run asks for it (its own `compute:` fields applied)."""
        run = self.experiment.run(run_name)
        return with_run_overrides(self.compute, dict(run.compute), self.experiment.source, f"runs.{run_name}.compute")


def _choices(hydra_cfg: Any) -> dict[str, str]:
    return dict(OmegaConf.select(hydra_cfg, "runtime.choices", default=None) or {})


def experiment_file(hydra_cfg: Any) -> Path | None:
    """The file the `experiment` group option was read from, searched as Hydra does."""
    choice = _choices(hydra_cfg).get("experiment")
    if not choice:
        return None
    for source in OmegaConf.select(hydra_cfg, "runtime.config_sources", default=None) or []:
        path, scheme = str(source.path), str(source.schema)
        if scheme == "file":
            candidate = Path(path) / "experiment" / f"{choice}.yaml"
        elif scheme == "pkg":
            try:
                candidate = Path(str(resources.files(path.replace("/", ".")))) / "experiment" / f"{choice}.yaml"
            except ModuleNotFoundError:
                continue
        elif scheme == EXPERIMENT_DIRS_SCHEME:
            candidate = Path(path) / choice / SUMMARY_FILE_NAME
        else:
            continue
        if candidate.is_file():
            return candidate
    return None


def read_experiment(cfg: DictConfig, hydra_cfg: Any) -> Experiment:
    location = experiment_file(hydra_cfg)
    choice = _choices(hydra_cfg).get("experiment")
    source = str(location) if location else f"experiment={choice}"
    node = cfg.get("experiment")
    if node is None:
        raise InputError("command line", "experiment", "no experiment chosen: add experiment=<name>")
    data = OmegaConf.to_container(node, resolve=True)
    default_dir = location.parent if location is not None and location.name == SUMMARY_FILE_NAME else None
    experiment = parse_experiment(data, source, default_directory=default_dir)
    if experiment.directory is not None and not experiment.directory.is_dir():
        raise InputError(source, "experiment.directory", f"{experiment.directory} is not a directory")
    return experiment


def read_inputs(cfg: DictConfig, hydra_cfg: Any) -> LaunchInputs:
    choices = _choices(hydra_cfg)
    compute_source = f"compute={choices.get('compute', '?')}"
    payload_source = f"payload={choices.get('payload', '?')}"
    return LaunchInputs(
        experiment=read_experiment(cfg, hydra_cfg),
        compute=typed(cfg.get("compute"), ComputeConfig, compute_source, "compute"),
        requeue=typed(cfg.get("requeue"), RequeueConfig, f"requeue={choices.get('requeue', '?')}", "requeue"),
        user=typed(cfg.get("user"), UserConfig, "user.yaml", "user"),
        payload=typed(cfg.get("payload"), PayloadConfig, payload_source, "payload"),
        compute_source=compute_source,
        payload_source=payload_source,
        rules=read_rules(cfg.get("monitoring"), f"monitoring={choices.get('monitoring', '?')}"),
        evaluation=typed(cfg.get("evaluation"), EvaluationConfig, "config.yaml", "evaluation"),
    )


def read_rules(node: Any, source: str) -> Rules:
    """The `monitoring` group's rules (none when the config has no such node)."""
    data = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    return parse_rules(data, source)
