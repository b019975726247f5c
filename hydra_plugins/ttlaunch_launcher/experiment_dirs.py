"""A Hydra config source that offers scaffolded experiment directories as `experiment` options.

With `hydra.searchpath=[ttlaunch-experiments:///scratch/me/experiments]` on the command line,
`experiment=cap_4L` reads `/scratch/me/experiments/cap_4L/experiment_summary.yaml` in place:
nothing is copied, and the run sub-directories beside it are the scaffold.
"""

import os
from typing import List, Optional

from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from omegaconf import OmegaConf

SUMMARY_FILE_NAME = "experiment_summary.yaml"
GROUP = "experiment"


class ExperimentDirsConfigSource(ConfigSource):
    @staticmethod
    def scheme() -> str:
        return "ttlaunch-experiments"

    def _summary(self, config_path: str) -> Optional[str]:
        group, _, name = config_path.partition("/")
        if group != GROUP or not name or "/" in name:
            return None
        if name.endswith(".yaml"):
            name = name[: -len(".yaml")]
        return os.path.join(self.path, name, SUMMARY_FILE_NAME)

    def load_config(self, config_path: str) -> ConfigResult:
        summary = self._summary(config_path)
        if summary is None or not os.path.isfile(summary):
            raise ConfigLoadError(f"No experiment summary for {config_path} under {self.path}")
        with open(summary, encoding="utf-8") as stream:
            config = OmegaConf.load(stream)
        return ConfigResult(
            config=config, path=self.full_path(), provider=self.provider, header={"package": GROUP}
        )

    def available(self) -> bool:
        return os.path.isdir(self.path)

    def is_group(self, config_path: str) -> bool:
        return config_path in ("", GROUP) and self.available()

    def is_config(self, config_path: str) -> bool:
        summary = self._summary(config_path)
        return summary is not None and os.path.isfile(summary)

    def list(self, config_path: str, results_filter: Optional[ObjectType]) -> List[str]:
        if config_path == "":
            return [GROUP] if results_filter in (None, ObjectType.GROUP) and self.available() else []
        if config_path != GROUP or results_filter == ObjectType.GROUP or not self.available():
            return []
        return sorted(
            entry for entry in os.listdir(self.path) if os.path.isfile(os.path.join(self.path, entry, SUMMARY_FILE_NAME))
        )
