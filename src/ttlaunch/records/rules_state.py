"""The rules engine's bookkeeping, `<sweep>/rules.json`: read offsets of each job's logs,
queued actions, and the keys of actions already decided (ttlaunch.monitor.rules keeps it;
`status --rebuild` checks it)."""

from __future__ import annotations

import json
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ttlaunch.base.errors import DamagedFile
from ttlaunch.base.files import write_atomically
from ttlaunch.records.jobs_file import fits_type, read_json_object, rebuild_hint

RULES_STATE_NAME = "rules.json"
_RULES_STATE_KEYS: tuple[tuple[str, object], ...] = (("offsets", {}), ("decided", []), ("queued", []), ("quiet", []))


@dataclass
class QueuedAction:
    """One action of a rule, fired by one event of a job, waiting to run or be decided."""

    key: str  # this firing: the job, its id, the event, the action's index, the values found
    job: str
    event: str
    action: int  # its index among the event's actions
    variables: dict[str, Any]  # what its templates and conditions read
    queued_at: float
    announced: bool = False  # ACTION_QUEUED was written


_QUEUED_TYPES = typing.get_type_hints(QueuedAction)


def _queued_action(item: object) -> QueuedAction | None:
    """A queued action as rules.json holds it (every field, each of its type); None when it
    is not one."""
    if not (isinstance(item, dict) and set(item) == set(_QUEUED_TYPES)):
        return None
    if not all(fits_type(value, _QUEUED_TYPES[key]) for key, value in item.items()):
        return None
    return QueuedAction(**item)


@dataclass
class RulesState:
    offsets: dict[str, dict[str, int]] = field(default_factory=dict)  # job -> log path -> bytes read
    decided: list[str] = field(default_factory=list)  # keys of actions run, skipped or timed out
    queued: list[QueuedAction] = field(default_factory=list)
    quiet: list[str] = field(default_factory=list)  # "<job>@<job id>@<event>" already reported inactive

    @classmethod
    def load(cls, path: Path) -> "RulesState":
        """The rules' bookkeeping; DamagedFile when the file is not what this class writes."""
        if not path.is_file():
            return cls()
        way_on = rebuild_hint(path.parent)
        data = read_json_object(path, way_on)
        offsets, decided, queued, quiet = (data.get(key, empty) for key, empty in _RULES_STATE_KEYS)
        well_formed = (
            isinstance(offsets, dict) and all(
                isinstance(logs, dict) and all(isinstance(n, int) and not isinstance(n, bool) for n in logs.values())
                for logs in offsets.values()
            )
            and all(isinstance(items, list) for items in (decided, queued, quiet))
            and all(isinstance(key, str) for key in [*decided, *quiet])
        )
        actions = [_queued_action(item) for item in queued] if well_formed else []
        if not well_formed or None in actions:
            raise DamagedFile(path, "not the rules' bookkeeping ttlaunch writes (offsets, decided, queued, quiet)", way_on)
        return cls(offsets, decided, [action for action in actions if action is not None], quiet)

    def save(self, path: Path) -> None:
        queued = [asdict(item) for item in self.queued]
        data = {"offsets": self.offsets, "decided": self.decided, "queued": queued, "quiet": self.quiet}
        write_atomically(path, json.dumps(data, indent=2) + "\n")
