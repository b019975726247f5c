"""OmegaConf resolvers used by the shipped configs (registered on import, idempotently)."""

from __future__ import annotations

import getpass

from omegaconf import OmegaConf

# $USER may be unset (CI, cron, some batch environments); the login name is not.
if not OmegaConf.has_resolver("ttlaunch.user"):
    OmegaConf.register_new_resolver("ttlaunch.user", getpass.getuser)
