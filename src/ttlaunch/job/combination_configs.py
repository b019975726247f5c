"""Each job's composed config, from its combination's, composed once by the launch.

Hydra's submitit launcher has each job compose its own config again (`load_sweep_config`):
for ttlaunch's own app that was a seventh of a trivial job's CPU. The jobs of one combination
of command-line overrides differ only by their per-job overrides (the run, the job's name),
plain values that cannot change what is composed (Hydra's defaults list interpolates config
group choices only). So the launch composes each combination once, as its jobs would, and
each job sets its own values on it, as Hydra applies a value override.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Sequence

from hydra._internal.config_loader_impl import get_overrides_dirname
from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf

# Each job's pickle carries the configs: past this size (8 of the demo's, at 31 KB each; fewer
# of an experiment of hundreds of runs), each job composes its own instead.
MAX_BYTES = 256 * 1024


@dataclass(frozen=True)
class CombinationConfigs:
    per_job_keys: tuple[str, ...]  # the overrides each job of a combination has of its own
    # A combination's overrides (each job's, less the per-job ones) -> its config, pickled:
    # a job unpickles only its own.
    configs: dict[tuple[str, ...], bytes]

    @classmethod
    def compose(
        cls, loader: ConfigLoader, master: DictConfig, job_overrides: Sequence[Sequence[str]], per_job_keys: Sequence[str]
    ) -> CombinationConfigs | None:
        """Each combination's config, composed as `load_sweep_config` composes a job's; None
        when they are more than MAX_BYTES."""
        keys = tuple(per_job_keys)
        configs: dict[tuple[str, ...], bytes] = {}
        for combination in dict.fromkeys(shared_overrides(overrides, keys) for overrides in job_overrides):
            config = loader.load_sweep_config(master, list(combination))
            # Parsed here once, for each job's override_dirname: a job parses only its own two.
            task = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
            configs[combination] = pickle.dumps((config, task))
            if sum(map(len, configs.values())) > MAX_BYTES:
                return None
        return cls(keys, configs)

    def config_for(self, overrides: Sequence[str]) -> DictConfig | None:
        """The job's config, as `load_sweep_config(master, overrides)` composes it; None for a
        job of no combination the launch composed (an evaluation, a rule's follow-up)."""
        pickled = self.configs.get(shared_overrides(overrides, self.per_job_keys))
        if pickled is None:
            return None
        config: DictConfig
        task: list[Override]  # the combination's task overrides, parsed
        config, task = pickle.loads(pickled)
        own = OverridesParser.create().parse_overrides([o for o in overrides if override_key(o) in self.per_job_keys])
        for override in own:  # as Hydra applies a value override, and lists it
            OmegaConf.update(config, override.key_or_group, override.value(), merge=True)
            listed = config.hydra.overrides.hydra if override.is_hydra_override() else config.hydra.overrides.task
            listed.append(override.input_line)  # the override as given
        dirname = config.hydra.job.config.override_dirname
        config.hydra.job.override_dirname = get_overrides_dirname(
            overrides=[*task, *(override for override in own if not override.is_hydra_override())],
            kv_sep=dirname.kv_sep, item_sep=dirname.item_sep, exclude_keys=list(dirname.exclude_keys),
        )
        return config


def override_key(override: str) -> str:
    """The key an override sets: '+seed=1' -> 'seed'; '~a.b' -> 'a.b'."""
    return override.split("=", 1)[0].lstrip("+~")


def shared_overrides(overrides: Sequence[str], per_job_keys: Sequence[str]) -> tuple[str, ...]:
    """A job's overrides less its own (`per_job_keys`): those its combination's jobs share."""
    return tuple(override for override in overrides if override_key(override) not in per_job_keys)
