"""Run by Python at start-up in a torchtune trainer that ttlaunch starts (the package's
docstring says why): each hook TTLAUNCH_TRAINER_HOOKS names waits for the torchtune module it
patches (its TARGET) to be imported, then patches it.

Self-contained (the standard library only, and the hook modules beside it), and does nothing
in a Python that never imports those modules. A sitecustomize it hides on sys.path (a site's,
an environment's) still runs, after it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType
from typing import Callable, Sequence

HOOKS_VARIABLE = "TTLAUNCH_TRAINER_HOOKS"
# Hook name -> its module, beside this one.
HOOK_MODULES = {"merge_on_copies": "ttlaunch_merge_on_copies", "tracker": "ttlaunch_tracker"}


class PatchAfterImport(importlib.abc.MetaPathFinder):
    """Finds `target` as the other finders would, and calls `patch` on it once it has run."""

    def __init__(self, target: str, patch: Callable[[ModuleType], None]) -> None:
        self.target, self.patch = target, patch

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.target:
            return None
        sys.meta_path.remove(self)  # once; the lookup below is then the ordinary one
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module
        patch = self.patch

        def exec_module(module: ModuleType) -> None:
            load(module)
            patch(module)

        setattr(spec.loader, "exec_module", exec_module)
        return spec


def install(names: Sequence[str]) -> None:
    """Wait for the modules the named hooks patch (unknown names are left out)."""
    for name in names:
        if name in HOOK_MODULES:
            hook = importlib.import_module(HOOK_MODULES[name])
            sys.meta_path.insert(0, PatchAfterImport(hook.TARGET, hook.patch))


def run_hidden_sitecustomize() -> None:
    """The sitecustomize this one hides on sys.path, run as Python would have run it."""
    here = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
    rest = [entry for entry in sys.path if os.path.realpath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


if __name__ == "sitecustomize":  # at start-up; imported under its package name (tests), it only defines
    install([name for name in os.environ.get(HOOKS_VARIABLE, "").split(",") if name])
    run_hidden_sitecustomize()
