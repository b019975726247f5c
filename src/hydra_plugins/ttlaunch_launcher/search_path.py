"""ttlaunch's config groups (compute presets, stagger hooks, requeue) for every Hydra app:
`+compute=killarney/h100_1x` picks ttlaunch_slurm and its resources from any app. Appended
last, so an app's own groups of the same name win."""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class TTLaunchSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="ttlaunch", path="pkg://ttlaunch.configs")
