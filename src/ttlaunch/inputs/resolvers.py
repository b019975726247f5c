"""OmegaConf resolvers used by the shipped configs (registered on import, idempotently)."""

from __future__ import annotations

import getpass

from omegaconf import OmegaConf

from ttlaunch.inputs.platform import detect_platform

# $USER may be unset (CI, cron, some batch environments); the login name is not.
if not OmegaConf.has_resolver("ttlaunch.user"):
    OmegaConf.register_new_resolver("ttlaunch.user", getpass.getuser)


def _first_set(*values: object) -> object:
    """The first value that is not null (oc.select returns a key's null instead of its default)."""
    return next((value for value in values if value is not None), None)


# ${ttlaunch.first_set:${a},b}: a unless it is null, else b.
if not OmegaConf.has_resolver("ttlaunch.first_set"):
    OmegaConf.register_new_resolver("ttlaunch.first_set", _first_set)


def _platform_detect() -> str:
    return detect_platform()


# ${platform_detect:}: the cluster this runs on (ttlaunch.inputs.platform), or "base".
if not OmegaConf.has_resolver("platform_detect"):
    OmegaConf.register_new_resolver("platform_detect", _platform_detect)
