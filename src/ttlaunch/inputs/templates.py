"""`{name}` placeholders in what the user wrote: payload commands, evaluation commands, rules.

One reading of a template for all of them, so a template that is accepted when a launch
checks its inputs renders the same way when a job or the monitor uses it.
"""

from __future__ import annotations

import string
from typing import Collection, Mapping


class TemplateError(ValueError):
    """A template that cannot be read, or that names a value there is none of."""


def placeholders(template: str) -> set[str]:
    """The names a template uses; TemplateError when its braces do not pair."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name}
    except ValueError as err:
        raise TemplateError(f"bad template {template!r}: {err}") from None


def check(template: str, known: Collection[str]) -> None:
    """TemplateError naming the unknown placeholders, and the known ones."""
    unknown = sorted(placeholders(template) - set(known))
    if unknown:
        raise TemplateError(f"unknown placeholder(s) {unknown} in {template!r}; known: {', '.join(sorted(known))}")


def render(template: str, values: Mapping[str, object]) -> str:
    """The template with each placeholder replaced by its value as text."""
    check(template, values.keys())
    return template.format_map({key: str(value) for key, value in values.items()})
