"""The `monitoring` config group: rules the monitor runs on what jobs do (cooldowns,
conversions, evaluations, restarts).

    log_events:     a pattern on each job's output as it grows -> actions
    state_events:   a state the job reaches (FAILED, TIMEOUT, OUT_OF_MEMORY, crash, ...) or the
                    cause of its end (gpu_oom, node_failure, code, ...)
                    or `inactive_s` seconds without output -> actions

An action (log, command, follow_up, restart, cancel) may carry conditions (file_exists,
glob_exists, max_attempts, metadata, command, all / any / not). Templates ({name}) take the
pattern's named groups, the event's metadata and {run_name}, {job_name}, {job_id},
{attempt}, {output_dir}, {job_dir}, {sweep_dir} (state events add {state}, {exit_code} and
{error_type}: oom, crash, timeout, ...; {cause}); an unknown name is an error at launch.

Parsed from plain data into frozen dataclasses here, validated before anything is submitted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Union

from ttlaunch.base.errors import InputError
from ttlaunch.inputs import templates
from ttlaunch.inputs.failure_causes import FailureCause
from ttlaunch.scheduler.states import JobState

BUILTIN_VARIABLES = ("run_name", "job_name", "job_id", "attempt", "output_dir", "job_dir", "sweep_dir", "event")
# A state event's `state`: one of our states, `crash` (FAILED with a non-zero exit code), or
# the cause of an end (ttlaunch.inputs.failure_causes: gpu_oom, node_failure, code, ...).
CRASH = "crash"


@dataclass(frozen=True)
class FileExists:
    path: str
    # Wait for the file (the action stays queued) until it exists or timeout_s passes.
    blocking: bool = False
    timeout_s: float = 600.0


@dataclass(frozen=True)
class GlobExists:
    pattern: str


@dataclass(frozen=True)
class MaxAttempts:
    """True while the run has been submitted fewer than `max` times."""

    max: int


@dataclass(frozen=True)
class MetadataIs:
    key: str
    equals: str | None = None
    not_equals: str | None = None


@dataclass(frozen=True)
class CommandSucceeds:
    command: tuple[str, ...]


@dataclass(frozen=True)
class AllOf:
    conditions: tuple["Condition", ...]


@dataclass(frozen=True)
class AnyOf:
    conditions: tuple["Condition", ...]


@dataclass(frozen=True)
class Not:
    condition: "Condition"


Condition = Union[FileExists, GlobExists, MaxAttempts, MetadataIs, CommandSucceeds, AllOf, AnyOf, Not]


@dataclass(frozen=True)
class LogAction:
    message: str
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class CommandAction:
    """Run an argv list (never through a shell) in the launching process, in the background."""

    command: tuple[str, ...]
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class FollowUpAction:
    """Submit a new job that inherits the run's config plus `overrides` (Hydra overrides),
    under its own stable name: a cooldown, an evaluation, a conversion job."""

    name: str
    overrides: tuple[str, ...] = ()
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class RestartAction:
    """Submit the run again (same name, same dirs: it resumes from disk). After OUT_OF_MEMORY
    only with on_oom=halve_batch_size, at most max_oom_restarts times."""

    on_oom: str = "never"  # never | halve_batch_size
    max_oom_restarts: int = 3
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class CancelAction:
    conditions: tuple[Condition, ...] = ()


Action = Union[LogAction, CommandAction, FollowUpAction, RestartAction, CancelAction]


@dataclass(frozen=True)
class LogEvent:
    name: str
    pattern: str
    regex: bool
    metadata: Mapping[str, str]
    actions: tuple[Action, ...]

    def match(self, line: str) -> dict[str, str] | None:
        """The variables of a matching line (named groups, then metadata); None if no match."""
        if not self.regex:
            return dict(self.metadata) if self.pattern in line else None
        found = re.search(self.pattern, line)
        if found is None:
            return None
        groups = {key: value for key, value in found.groupdict().items() if value is not None}
        return {**self.metadata, **groups}


@dataclass(frozen=True)
class StateEvent:
    name: str
    states: tuple[str, ...]  # JobState values, "crash", failure causes
    inactive_s: float | None
    metadata: Mapping[str, str]
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class Rules:
    log_events: tuple[LogEvent, ...] = ()
    state_events: tuple[StateEvent, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.log_events and not self.state_events


class _Reader:
    """Walks the plain data, naming the source and the field of every error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> InputError:
        return InputError(self.source, where, message)

    def mapping(self, data: object, where: str, allowed: Sequence[str]) -> Mapping[str, Any]:  # YAML values, read by the caller
        if not isinstance(data, Mapping):
            raise self.fail(where, f"expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise self.fail(where, f"unknown key(s) {unknown}; allowed: {', '.join(allowed)}")
        return data

    def argv(self, data: object, where: str) -> tuple[str, ...]:
        if not isinstance(data, Sequence) or isinstance(data, str) or not data:
            raise self.fail(where, "expected a non-empty argv list (never a shell string)")
        return tuple(str(item) for item in data)

    def condition(self, data: object, where: str) -> Condition:
        kind = data.get("type") if isinstance(data, Mapping) else None
        if kind == "file_exists":
            item = self.mapping(data, where, ("type", "path", "blocking", "timeout_s"))
            return FileExists(str(item["path"]), bool(item.get("blocking", False)), float(item.get("timeout_s", 600)))
        if kind == "glob_exists":
            return GlobExists(str(self.mapping(data, where, ("type", "pattern"))["pattern"]))
        if kind == "max_attempts":
            return MaxAttempts(int(self.mapping(data, where, ("type", "max"))["max"]))
        if kind == "metadata":
            item = self.mapping(data, where, ("type", "key", "equals", "not_equals"))
            if ("equals" in item) == ("not_equals" in item):
                raise self.fail(where, "a metadata condition needs exactly one of equals, not_equals")
            equals, not_equals = (None if item.get(key) is None else str(item[key]) for key in ("equals", "not_equals"))
            return MetadataIs(str(item["key"]), equals, not_equals)
        if kind == "command":
            return CommandSucceeds(self.argv(self.mapping(data, where, ("type", "command"))["command"], f"{where}.command"))
        if kind in ("all", "any"):
            items = self.mapping(data, where, ("type", "conditions"))["conditions"]
            parsed = tuple(self.condition(sub, f"{where}.conditions[{i}]") for i, sub in enumerate(items))
            return AllOf(parsed) if kind == "all" else AnyOf(parsed)
        if kind == "not":
            return Not(self.condition(self.mapping(data, where, ("type", "condition"))["condition"], f"{where}.condition"))
        raise self.fail(
            f"{where}.type", f"unknown condition {kind!r}: file_exists, glob_exists, max_attempts, metadata, command, all, any, not"
        )

    def action(self, data: object, where: str) -> Action:
        kind = data.get("type") if isinstance(data, Mapping) else None
        common = ("type", "conditions")
        if kind in ("log", "command", "follow_up", "restart", "cancel"):
            keys = {
                "log": ("message",), "command": ("command",), "follow_up": ("name", "overrides"),
                "restart": ("on_oom", "max_oom_restarts"), "cancel": (),
            }[kind]
            item = self.mapping(data, where, (*common, *keys))
        else:
            raise self.fail(f"{where}.type", f"unknown action {kind!r}: log, command, follow_up, restart, cancel")
        conditions = tuple(self.condition(sub, f"{where}.conditions[{i}]") for i, sub in enumerate(item.get("conditions") or []))
        if kind == "log":
            return LogAction(str(item["message"]), conditions)
        if kind == "command":
            return CommandAction(self.argv(item["command"], f"{where}.command"), conditions)
        if kind == "follow_up":
            name = str(item["name"])
            return FollowUpAction(name, tuple(str(o) for o in item.get("overrides") or ()), conditions)
        if kind == "restart":
            on_oom = str(item.get("on_oom", "never"))
            if on_oom not in ("never", "halve_batch_size"):
                raise self.fail(f"{where}.on_oom", f"expected never or halve_batch_size, got {on_oom!r}")
            return RestartAction(on_oom, int(item.get("max_oom_restarts", 3)), conditions)
        return CancelAction(conditions)

    def actions(self, data: object, where: str) -> tuple[Action, ...]:
        if not isinstance(data, Sequence) or isinstance(data, str) or not data:
            raise self.fail(where, "expected a non-empty list of actions")
        return tuple(self.action(item, f"{where}[{index}]") for index, item in enumerate(data))


def parse_rules(data: object, source: str) -> Rules:
    """Rules from the `monitoring` node (plain data); InputError naming file and field."""
    try:
        return _parse_rules(data, source)
    except KeyError as err:
        raise InputError(source, "monitoring", f"missing key {err}") from None
    except (TypeError, ValueError) as err:
        raise InputError(source, "monitoring", str(err)) from None


def _parse_rules(data: object, source: str) -> Rules:
    reader = _Reader(source)
    top = reader.mapping(data or {}, "monitoring", ("log_events", "state_events"))
    log_events = []
    for index, item in enumerate(top.get("log_events") or []):
        where = f"monitoring.log_events[{index}]"
        event = reader.mapping(item, where, ("name", "pattern", "pattern_type", "metadata", "actions"))
        kind = str(event.get("pattern_type", "regex"))
        if kind not in ("regex", "substring"):
            raise reader.fail(f"{where}.pattern_type", f"expected regex or substring, got {kind!r}")
        pattern = str(event["pattern"])
        groups: tuple[str, ...] = ()
        if kind == "regex":
            try:
                groups = tuple(re.compile(pattern).groupindex)
            except re.error as err:
                raise reader.fail(f"{where}.pattern", f"not a regular expression: {err}") from None
        metadata = {str(k): str(v) for k, v in (event.get("metadata") or {}).items()}
        parsed = LogEvent(str(event["name"]), pattern, kind == "regex", metadata, reader.actions(event.get("actions"), f"{where}.actions"))
        _check_templates(reader, parsed.actions, {*BUILTIN_VARIABLES, *groups, *metadata}, f"{where}.actions")
        log_events.append(parsed)
    state_events = []
    known_states = {state.value for state in JobState} | {CRASH} | {cause.value for cause in FailureCause}
    for index, item in enumerate(top.get("state_events") or []):
        where = f"monitoring.state_events[{index}]"
        event = reader.mapping(item, where, ("name", "state", "inactive_s", "metadata", "actions"))
        states = event.get("state") or []
        states = [states] if isinstance(states, str) else list(states)
        unknown = [state for state in states if state not in known_states]
        if unknown:
            raise reader.fail(f"{where}.state", f"unknown state(s) {unknown}; known: {', '.join(sorted(known_states))}")
        inactive = event.get("inactive_s")
        if not states and inactive is None:
            raise reader.fail(where, "a state event needs `state` or `inactive_s`")
        metadata = {str(k): str(v) for k, v in (event.get("metadata") or {}).items()}
        parsed_state = StateEvent(
            str(event["name"]), tuple(states), None if inactive is None else float(inactive), metadata,
            reader.actions(event.get("actions"), f"{where}.actions"),
        )
        known = {*BUILTIN_VARIABLES, "exit_code", "state", "error_type", "cause", *metadata}
        _check_templates(reader, parsed_state.actions, known, f"{where}.actions")
        state_events.append(parsed_state)
    return Rules(tuple(log_events), tuple(state_events))


def _templates(action: Action) -> list[str]:
    texts: list[str] = []
    if isinstance(action, LogAction):
        texts.append(action.message)
    elif isinstance(action, CommandAction):
        texts += action.command
    elif isinstance(action, FollowUpAction):
        texts += [action.name, *action.overrides]
    texts += _condition_templates(action.conditions)
    return texts


def _condition_templates(conditions: Sequence[Condition]) -> list[str]:
    texts: list[str] = []
    for condition in conditions:
        if isinstance(condition, FileExists):
            texts.append(condition.path)
        elif isinstance(condition, GlobExists):
            texts.append(condition.pattern)
        elif isinstance(condition, CommandSucceeds):
            texts += condition.command
        elif isinstance(condition, MetadataIs):
            texts += [value for value in (condition.equals, condition.not_equals) if value is not None]
        elif isinstance(condition, (AllOf, AnyOf)):
            texts += _condition_templates(condition.conditions)
        elif isinstance(condition, Not):
            texts += _condition_templates([condition.condition])
    return texts


def _check_templates(reader: _Reader, actions: Sequence[Action], known: set[str], where: str) -> None:
    for index, action in enumerate(actions):
        for text in _templates(action):
            try:
                templates.check(text, known)
            except templates.TemplateError as err:
                raise reader.fail(f"{where}[{index}]", str(err)) from None
