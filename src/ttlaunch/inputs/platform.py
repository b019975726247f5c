"""Which cluster this is, from its hostname. The compute default follows it
(`compute=<platform's preset>` unless the command line picks one); an unknown machine is
`base`, which keeps the local default.

`TTLAUNCH_PLATFORM=<name>` names the platform outright (a cluster whose login nodes look
like any other machine). In configs, `${platform_detect:}` gives the same name.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from typing import Mapping, Sequence

from ttlaunch.base import environment

BASE = "base"


@dataclass(frozen=True)
class Platform:
    name: str
    # The compute preset a launch on this platform uses unless told otherwise.
    default_preset: str
    hostname_patterns: Sequence[str] = ()


# Only what the hostnames say for sure; elsewhere set TTLAUNCH_PLATFORM.
PLATFORMS: tuple[Platform, ...] = (
    Platform("killarney", "killarney/l40s_1x", hostname_patterns=(r"killarney",)),
    Platform("bon_echo", "bon_echo/a40_1x", hostname_patterns=(r"bon-?echo",)),
)


def detect_platform(
    environ: Mapping[str, str] = os.environ,
    hostname: str | None = None,
    platforms: Sequence[Platform] = PLATFORMS,
) -> str:
    named = environ.get(environment.PLATFORM)
    if named:
        return named
    host = (hostname if hostname is not None else socket.gethostname()).lower()  # no DNS lookup
    for platform in platforms:
        if any(re.search(pattern, host) for pattern in platform.hostname_patterns):
            return platform.name
    return BASE


def default_preset(platform: str, platforms: Sequence[Platform] = PLATFORMS) -> str | None:
    """The compute preset of a known platform; None for `base` or a platform without one."""
    return next((p.default_preset for p in platforms if p.name == platform), None)
