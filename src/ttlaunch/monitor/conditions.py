"""Whether a queued rule action may run: its conditions (ttlaunch.inputs.rulebook) judged
YES, NO (the action is skipped, with why) or WAIT (a blocking file condition still waiting)."""

from __future__ import annotations

import glob
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ttlaunch.inputs.rulebook import (
    AllOf,
    AnyOf,
    CommandSucceeds,
    Condition,
    FileExists,
    GlobExists,
    MaxAttempts,
    MetadataIs,
    Not,
)
from ttlaunch.inputs.templates import render

YES, NO, WAIT = "yes", "no", "wait"
CONDITION_COMMAND_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Subject:
    """What the conditions of one queued action are judged on."""

    variables: Mapping[str, object]  # the firing's values, as its templates read them
    waited_s: float  # since the action was queued
    attempts: int  # of the job, its restarts included


def judge(conditions: Sequence[Condition], subject: Subject) -> tuple[str, str]:
    """YES when every condition holds; else the first NO or WAIT, with why."""
    for condition in conditions:
        verdict, why = _judge_one(condition, subject)
        if verdict != YES:
            return verdict, why
    return YES, ""


def _judge_one(condition: Condition, subject: Subject) -> tuple[str, str]:
    variables = subject.variables
    if isinstance(condition, FileExists):
        path = render(condition.path, variables)
        if Path(path).exists():
            return YES, ""
        if condition.blocking and subject.waited_s < condition.timeout_s:
            return WAIT, f"{path} (up to {condition.timeout_s:.0f} s)"
        return NO, f"{path} does not exist" + (f" after {condition.timeout_s:.0f} s" if condition.blocking else "")
    if isinstance(condition, GlobExists):
        pattern = render(condition.pattern, variables)
        return (YES, "") if glob.glob(pattern) else (NO, f"nothing matches {pattern}")
    if isinstance(condition, MaxAttempts):
        attempts = subject.attempts
        return (YES, "") if attempts < condition.max else (NO, f"{attempts} attempts (max_attempts {condition.max})")
    if isinstance(condition, MetadataIs):
        value = str(variables.get(condition.key, ""))
        if condition.equals is not None:
            wanted = render(condition.equals, variables)
            return (YES, "") if value == wanted else (NO, f"{condition.key}={value}, not {wanted}")
        unwanted = render(condition.not_equals or "", variables)
        return (YES, "") if value != unwanted else (NO, f"{condition.key}={value}")
    if isinstance(condition, CommandSucceeds):
        argv = [render(part, variables) for part in condition.command]
        try:
            code = subprocess.run(argv, capture_output=True, timeout=CONDITION_COMMAND_TIMEOUT_S).returncode
        except (OSError, subprocess.TimeoutExpired) as err:
            return NO, f"{argv[0]}: {err}"
        return (YES, "") if code == 0 else (NO, f"{json.dumps(argv)} exited {code}")
    if isinstance(condition, AllOf):
        return judge(condition.conditions, subject)
    if isinstance(condition, AnyOf):
        verdicts = [_judge_one(sub, subject) for sub in condition.conditions]
        if any(verdict == YES for verdict, _ in verdicts):
            return YES, ""
        waiting = [why for verdict, why in verdicts if verdict == WAIT]
        return (WAIT, waiting[0]) if waiting else (NO, "; ".join(why for _, why in verdicts))
    if isinstance(condition, Not):
        verdict, why = _judge_one(condition.condition, subject)
        return {YES: (NO, "negated condition holds"), NO: (YES, ""), WAIT: (WAIT, why)}[verdict]
    raise TypeError(f"unknown condition {condition!r}")
