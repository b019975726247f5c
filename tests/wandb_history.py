"""What an offline W&B run holds, read from its `run-<id>.wandb` files as `wandb sync` reads
them (wandb has no public reader of its own since 0.19): the records, framed as LevelDB's log
(32 KiB blocks, records split FULL/FIRST/MIDDLE/LAST) after W&B's 7-byte header, each one of
W&B's own protobuf `Record`s (`wandb.proto`)."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

HEADER = b":W&B"
HEADER_LEN = 7
BLOCK_LEN = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[bytes]:
    data = path.read_bytes()
    assert data[:4] == HEADER, f"{path} is not a W&B run file"
    position, pending = HEADER_LEN, b""
    while position + 7 <= len(data):
        left = BLOCK_LEN - position % BLOCK_LEN
        if left < 7:  # the block's tail is padding
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        position += 7
        chunk = data[position:position + length]
        position += length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk


@dataclass
class OfflineRun:
    """One attempt's offline run: its id, group, job type, name, config, the step it was
    rewound to (resume_from), its history (step -> the values logged at it) and summary."""

    id: str = ""
    group: str = ""
    job_type: str = ""
    name: str = ""
    config: dict = field(default_factory=dict)
    rewound_to: int | None = None
    history: dict[int, dict] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)


def read_run(run_dir: Path) -> OfflineRun:
    from wandb.proto import wandb_internal_pb2  # the test extra's wandb

    run = OfflineRun()
    (path,) = run_dir.glob("run-*.wandb")
    for data in records(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.id, run.group, run.job_type, run.name = record.run.run_id, record.run.run_group, record.run.job_type, record.run.display_name
            run.config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "config":
            run.config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "summary":
            run.summary.update({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.summary.update})
        elif kind == "history":
            values = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            step = record.history.step.num if record.history.HasField("step") else values["_step"]
            run.history.setdefault(int(step), {}).update(values)
    internal = run.config.get("_wandb", {})
    branch = internal.get("value", internal).get("branch_point")  # resume_from's rewind
    if branch:
        run.rewound_to = int(branch["step"])
    return run


def one_history(runs: list[OfflineRun]) -> list[int]:
    """The steps W&B shows of a run whose attempts are `runs` (oldest first): each rewind drops
    what earlier attempts logged after its step."""
    steps: list[int] = []
    for run in runs:
        if run.rewound_to is not None:
            steps = [step for step in steps if step <= run.rewound_to]
        steps += sorted(run.history)
    return steps
