"""How a job's name is made from the overrides that tell it from the sweep's other jobs, and
passed back to Hydra as an override value.

A name's parts are `key=value` joined by `__` (`r8__seed=-1`, `lr=0.001__seed=1`): no run of
underscores within a part and no `=` within a key or a value, so each part reads back as the
one override it names, and a negative number keeps its sign.
"""

from __future__ import annotations

import re

PART_SEPARATOR = "__"
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_UNDERSCORES = re.compile(r"__+")


def safe_text(text: str) -> str:
    """`text` in a name: characters other than letters, digits, '.', '_' and '-' become one '-'
    between what they separate (a value's own '-', a sign, is kept); `__` becomes `_`."""
    return _UNDERSCORES.sub("_", "-".join(token for token in _UNSAFE_CHARS.split(text) if token))


def name_part(override: str) -> str:
    """An override as a part of a job name: `lr=0.001` -> `lr=0.001`, `+y=-2.0` -> `y=-2.0`,
    `opt=[a,b]` -> `opt=a-b`; a key alone (`~x`) -> `x`."""
    key, equals, value = override.partition("=")
    return f"{safe_text(key.lstrip('+~'))}={safe_text(value)}" if equals else safe_text(key.lstrip("+~"))


def name_override(key: str, name: str) -> str:
    """The override setting `key` to a job name, quoted where it has a `=` (Hydra's override
    grammar reads no bare `=` in a value)."""
    return f"{key}='{name}'" if "=" in name else f"{key}={name}"


def override_value(override: str) -> str:
    """The value an override sets, unquoted as Hydra would (name_override's quotes)."""
    value = override.split("=", 1)[1] if "=" in override else ""
    quoted = len(value) > 1 and value[0] == value[-1] and value[0] in "'\""
    return value[1:-1] if quoted else value
