"""Every field an experiment summary may have, and whether ttlaunch uses it.

cruijff_kit's design template (`experiment_summary.yaml`) documents an experiment for
people and for cruijff_kit's other tools (its scaffolding, data generators, Weights &
Biases): many of its fields change nothing ttlaunch does. They are accepted and listed once
as not used; a key that is in neither ttlaunch's nor cruijff_kit's format is an error naming
the closest known key (a misspelling would otherwise be silently ignored).

Pure: a mapping goes in, the not-used fields or an InputError come out.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Mapping, Union

from ttlaunch.base.errors import InputError


@dataclass(frozen=True)
class Open:
    """A mapping whose keys are the user's own (controls, variables, a generator's settings)."""

    used: bool


@dataclass(frozen=True)
class Each:
    """A list of mappings with these fields."""

    fields: "Mapping[str, Field]"


# True: ttlaunch uses it; False: accepted, not used; or the shape of a nested section.
Field = Union[bool, Open, Each, Mapping[str, "Field"]]

EXPERIMENT_FIELDS: Mapping[str, Field] = {
    "name": True, "dir": True, "directory": True,
    "project": False, "question": False, "date": False, "hypothesis": False, "purpose": False,
}
# cruijff_kit's compute estimate of a run or of the evaluations: time, gpus, mem.
CRUIJFF_COMPUTE: Mapping[str, Field] = {"time": True, "gpus": True, "mem": True}
TASK_FIELDS: Mapping[str, Field] = {
    "name": True, "script": True, "args": True, "system_prompt": True, "temperature": True, "max_tokens": True,
    "dataset": True, "prompt": True, "assistant_prefix": True,
    "description": False,
    # A condition of data.data_generation: its test file is named by a hash of cruijff_kit's
    # generator config, which only cruijff_kit computes.
    "eval_condition": False,
}
MATRIX_FIELDS: Mapping[str, Field] = {"run": True, "tasks": True, "epochs": True, "vis_label": True}
EVALUATION_FIELDS: Mapping[str, Field] = {
    "tasks": Each(TASK_FIELDS),
    "matrix": Each(MATRIX_FIELDS),
    "scorers": True, "temperature": True, "do_sample": True, "seed": True, "max_tokens": True, "max_connections": True,
    "system_prompt": True, "assistant_prefix": True,
    "compute": CRUIJFF_COMPUTE,
}
SUMMARY_FIELDS: Mapping[str, Field] = {
    "experiment": EXPERIMENT_FIELDS,
    "tools": {"preparation": False, "evaluation": False},
    "variables": Open(used=False),  # the runs list every value: the results table shows what varies
    "controls": Open(used=True),
    "models": {"base": Each({"name": True, "path": True, "size_gb": False})},
    "data": {
        "training": {
            "path": True, "dataset_label": False, "format": False, "size_kb": False, "splits": False,
        },
        "data_generation": Open(used=False),
    },
    "output": {"wandb_project": False},
    "runs": True,  # checked run by run (ttlaunch.inputs.summary), flat parameters allowed
    "evaluation": EVALUATION_FIELDS,
}
# Keys of a run entry that ttlaunch does not use (the rest are its name, type, model,
# parameters, compute, or, in the plain shape, parameters written flat).
UNUSED_RUN_KEYS = frozenset({"training_condition", "description"})


def unknown_key(source: str, where: str, key: object, known: Mapping[str, Field]) -> InputError:
    """The error for a key no format has, with the closest known one."""
    close = difflib.get_close_matches(str(key), list(known), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return InputError(source, f"{where}{key}", f"unknown field; {hint}expected one of {', '.join(known)}")


def not_used(data: Mapping[str, object], source: str) -> list[str]:
    """The fields of a summary that ttlaunch does not use, as `section.field` (a list's
    entries as `[]`), each once; an InputError for a key that no format has."""
    found: list[str] = []
    _walk(data, SUMMARY_FIELDS, "", source, found)
    runs = data.get("runs")
    for entry in runs if isinstance(runs, list) else []:
        if isinstance(entry, Mapping):
            found += [f"runs[].{key}" for key in sorted(UNUSED_RUN_KEYS & set(entry))]
    return list(dict.fromkeys(found))


def _walk(data: object, spec: Field, where: str, source: str, found: list[str]) -> None:
    path = where.rstrip(".")
    if isinstance(spec, bool):
        if not spec:
            found.append(path)
        return
    if isinstance(spec, Open):
        if not spec.used:
            found.append(path)
        return
    if isinstance(spec, Each):
        for index, entry in enumerate(data if isinstance(data, list) else []):
            if isinstance(entry, Mapping):  # anything else: the parser names it
                _walk_mapping(entry, spec.fields, f"{path}[{index}].", source, found, f"{path}[].")
        return
    if isinstance(data, Mapping):
        _walk_mapping(data, spec, where, source, found, where)


def _walk_mapping(
    data: Mapping[object, object], spec: Mapping[str, Field], where: str, source: str, found: list[str], listed_as: str
) -> None:
    for key, value in data.items():
        if key not in spec:
            raise unknown_key(source, where, key, spec)
        _walk(value, spec[str(key)], f"{listed_as}{key}.", source, found)
