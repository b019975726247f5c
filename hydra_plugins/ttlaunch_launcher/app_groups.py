"""ttlaunch's config groups for any Hydra app, under a `ttlaunch/` prefix:
`+ttlaunch/compute=killarney/h100_1x`, `+ttlaunch/requeue=on`, `+ttlaunch/stagger=startup_lock`.

The prefix is what keeps installing ttlaunch from changing other apps. Hydra puts the
entries search-path plugins add before the ones an app names in its own `hydra.searchpath`,
and it validates a config against a ConfigStore entry of the same name, so under their plain
names ttlaunch's presets would replace an app's own `compute/killarney/l40s_1x.yaml`
(vec-playbook's, say). Under `ttlaunch/` no app's name is taken. A chosen group's node is
`ttlaunch.<group>` in the app's config, beside the app's own keys. ttlaunch's own app keeps
the plain names (`compute=...`): its primary config path holds the same files.
"""

from importlib.resources import files
from typing import List, Optional

from hydra._internal.core_plugins.importlib_resources_config_source import ImportlibResourcesConfigSource
from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import ListConfig, OmegaConf

from ttlaunch.inputs.schema import APP_GROUPS
from ttlaunch.inputs.schema import APP_GROUPS_PREFIX as PREFIX

_PACKAGE = "ttlaunch.configs"


def _unprefixed(config_path: str) -> Optional[str]:
    """`ttlaunch/compute/x` -> `compute/x`; None for a path outside the app groups."""
    head, _, rest = config_path.partition("/")
    if head != PREFIX or rest.split("/", 1)[0].removesuffix(".yaml") not in APP_GROUPS:
        return None
    return rest


def _prefixed_default(entry: str) -> str:
    """A defaults-list entry naming an app group absolutely (`/compute/base@_here_`, as the
    presets do) -> the same under the prefix; anything else as it is."""
    override, _, target = entry.rpartition(" ")
    if target.startswith("/") and target[1:].split("/", 1)[0] in APP_GROUPS:
        target = f"/{PREFIX}{target}"
    return f"{override} {target}" if override else target


class AppGroupsConfigSource(ImportlibResourcesConfigSource):
    @staticmethod
    def scheme() -> str:
        return "ttlaunch-groups"

    def load_config(self, config_path: str) -> ConfigResult:
        inner = _unprefixed(config_path)
        if inner is None:
            raise ConfigLoadError(f"Config not found: {config_path}")
        result = super().load_config(inner)
        defaults = OmegaConf.select(result.config, "defaults") if OmegaConf.is_dict(result.config) else None
        if isinstance(defaults, ListConfig):
            for index, entry in enumerate(defaults):
                if isinstance(entry, str):
                    defaults[index] = _prefixed_default(entry)
                else:  # {"override /hydra/launcher@...": value}
                    defaults[index] = {_prefixed_default(str(key)): value for key, value in entry.items()}
        return result

    def is_group(self, config_path: str) -> bool:
        if config_path in ("", PREFIX):
            return True
        inner = _unprefixed(config_path)
        return inner is not None and super().is_group(inner)

    def is_config(self, config_path: str) -> bool:
        inner = _unprefixed(config_path)
        return inner is not None and super().is_config(inner)

    def list(self, config_path: str, results_filter: Optional[ObjectType]) -> List[str]:
        if config_path == "":
            return [PREFIX] if results_filter in (None, ObjectType.GROUP) else []
        if config_path == PREFIX:
            return list(APP_GROUPS) if results_filter in (None, ObjectType.GROUP) else []
        inner = _unprefixed(config_path)
        if inner is None or not super().is_group(inner):
            return []
        found: List[str] = []
        for entry in files(self.path).joinpath(inner).iterdir():  # each judged by its prefixed path
            self._list_add_result(found, f"{config_path}/{entry.name}", entry.name, results_filter)
        return sorted(set(found))


class TTLaunchSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="ttlaunch", path=f"{AppGroupsConfigSource.scheme()}://{_PACKAGE}")
