"""A sweep's one-time preparation, done in the first job that needs it, while the others wait.

Jobs that start together on a shared filesystem must not all build the same thing at once:
the HuggingFace datasets cache of their dataset (concurrent first use of one cache corrupts
or rebuilds it), or whatever `payload.prepare` commands make (a tokenizer download, the
demo's assets). Each such step is a `Preparation`, keyed by a hash of what it depends on.
The first job to reach a step takes its lock (`<sweep dir>/prepared/<key>.lock`), does it,
and records it (`<key>.json`: what, by which job, when, how long). Jobs that arrive while
it runs wait for the lock, then find the record; jobs that arrive later find the record
and do not wait at all. Steps with different keys (runs with different datasets) are
prepared each once, independently. A step that fails is not recorded: its job fails, and
the next job to reach it tries again.

Runs in the job (ttlaunch.job.task).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ttlaunch.base import environment
from ttlaunch.base.files import write_atomically
from ttlaunch.base.times import timestamp
from ttlaunch.inputs.payload_command import PayloadCommand
from ttlaunch.inputs.torchtune_configs import recipe_arguments, tune_config

log = logging.getLogger(__name__)

PREPARED_DIR = "prepared"
# While waiting for another job's preparation, say so this often.
WAIT_NOTE_EVERY_S = 60.0


@dataclass(frozen=True)
class Preparation:
    """One step: `act()` does it and returns the paths it produced, which must still exist
    for its record to count (a deleted cache is prepared again)."""

    what: str  # for logs and the record
    depends_on: Mapping[str, object]  # JSON values: the step is done once per distinct value
    act: Callable[[], Sequence[str]]

    @property
    def key(self) -> str:
        text = json.dumps(self.depends_on, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def prepared_record(sweep_dir: Path, key: str) -> dict[str, object] | None:
    """The record of a step done, when it holds (its products still exist); else None."""
    try:
        record = json.loads((sweep_dir / PREPARED_DIR / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    produced = record.get("produced") if isinstance(record, dict) else None
    if not isinstance(produced, list) or not all(Path(str(path)).exists() for path in produced):
        return None
    return dict(record)


def prepare_once(sweep_dir: Path, preparation: Preparation, job: str) -> bool:
    """Do the step unless a job of the sweep did; True when this job did it."""
    # filelock loads only where a lock is taken.
    from filelock import FileLock, Timeout

    key = preparation.key
    found = prepared_record(sweep_dir, key)
    if found is not None:
        log.info("prepared already by %s: %s", found.get("prepared_by"), preparation.what)
        return False
    directory = sweep_dir / PREPARED_DIR
    directory.mkdir(exist_ok=True)
    lock = FileLock(str(directory / f"{key}.lock"))
    waited_since = time.monotonic()
    while True:
        try:
            lock.acquire(timeout=WAIT_NOTE_EVERY_S)
            break
        except Timeout:
            log.info(
                "waiting %.0f s for another job to prepare: %s (%s)",
                time.monotonic() - waited_since, preparation.what, _holder(directory, key),
            )
    try:
        found = prepared_record(sweep_dir, key)
        if found is not None:
            log.info(
                "prepared by %s while this job waited %.1f s: %s",
                found.get("prepared_by"), time.monotonic() - waited_since, preparation.what,
            )
            return False
        return _prepare(directory, key, preparation, job)
    finally:
        lock.release()


def _prepare(directory: Path, key: str, preparation: Preparation, job: str) -> bool:
    holder = directory / f"{key}.holder"
    started, began = timestamp(), time.monotonic()
    holder.write_text(f"{job} on {socket.gethostname()} since {started}\n", encoding="utf-8")
    try:
        log.info("preparing for the sweep: %s", preparation.what)
        produced = [str(path) for path in preparation.act()]
    finally:
        holder.unlink(missing_ok=True)
    seconds = round(time.monotonic() - began, 2)
    record = {
        "what": preparation.what, "depends_on": preparation.depends_on, "prepared_by": job,
        "host": socket.gethostname(), "started": started, "seconds": seconds, "produced": produced,
    }
    write_atomically(directory / f"{key}.json", json.dumps(record, indent=2, default=str) + "\n")
    log.info("prepared in %.1f s: %s", seconds, preparation.what)
    return True


def _holder(directory: Path, key: str) -> str:
    try:
        return "being prepared by " + (directory / f"{key}.holder").read_text(encoding="utf-8").strip()
    except OSError:
        return "its holder is not known yet"


def prepare_all(sweep_dir: Path, steps: Iterator[Preparation], job: str) -> None:
    """Each step in turn (a later step's key may depend on what an earlier one made)."""
    for step in steps:
        prepare_once(sweep_dir, step, job)


# Where the HuggingFace datasets cache is (the first one set wins, in the datasets library).
CACHE_ENV = ("HF_DATASETS_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HOME")
Runner = Callable[[Sequence[str], Mapping[str, str]], None]


def command_steps(command: PayloadCommand, run: Runner) -> Iterator[Preparation]:
    """The steps of a job's `payload.prepare` commands, in order (a payload kind may add its
    own: ttlaunch.job.job_payloads). `run(argv, env)` runs a command, raising when it fails."""
    env = command.sweep_env()
    for index, argv in enumerate(command.prepare):
        yield Preparation(
            what=f"payload.prepare[{index}]: {' '.join(argv)}",
            depends_on={"step": "command", "argv": list(argv), "env": env},
            act=functools.partial(_run_command, run, argv, env),
        )


def _run_command(run: Runner, argv: Sequence[str], env: Mapping[str, str]) -> Sequence[str]:
    run(argv, env)
    return []


def dataset_step(argv: Sequence[str], env: Mapping[str, str], run: Runner) -> Preparation | None:
    """Building the datasets cache of a `tune run` command's dataset, keyed by the dataset's
    config, where the cache is, and the size and time of each local data file it names; None
    when the command's config cannot be read or has no dataset."""
    arguments, config = recipe_arguments(argv), tune_config(argv)
    if arguments is None or config is None or config.get("dataset") is None:
        log.info("no dataset config to prepare a cache for")
        return None
    try:
        dataset = OmegaConf.to_container(config.dataset, resolve=True)
    except OmegaConfBaseException:  # an interpolation only the recipe can resolve
        dataset = OmegaConf.to_container(config.dataset, resolve=False)
    environ = {**os.environ, **env}
    files = {value: file_stamp(Path(value)) for value in _strings(dataset) if ("/" in value or "." in value) and Path(value).exists()}
    depends_on = {
        "step": "dataset cache", "dataset": dataset, "cache": {name: environ.get(name) for name in CACHE_ENV}, "files": files,
    }

    def build() -> Sequence[str]:
        with tempfile.TemporaryDirectory(prefix="ttlaunch-prepared-") as scratch:
            report = Path(scratch) / "report.json"
            run([sys.executable, "-m", "ttlaunch.job.dataset_cache", *arguments], {**env, environment.PREPARED_REPORT: str(report)})
            return [str(path) for path in json.loads(report.read_text(encoding="utf-8"))]

    return Preparation(what=f"datasets cache of {_describe(dataset)}", depends_on=depends_on, act=build)


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _describe(dataset: object) -> str:
    """`instruct_dataset (json: /data/train.json)`: the dataset's builder and source."""
    parts = dataset if isinstance(dataset, list) else [dataset]
    described = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        builder = str(part.get("_component_", "?")).rsplit(".", 1)[-1]
        source = part.get("source")
        files = part.get("data_files")
        where = ", ".join(str(item) for item in ([source] if source else []) + ([files] if files else []))
        described.append(f"{builder} ({where})" if where else builder)
    return " + ".join(described) or "the dataset"


def job_label(run_name: str, environ: Mapping[str, str] = os.environ) -> str:
    """How a record names the job that prepared: the run, with its SLURM job id when it has one."""
    job_id = environ.get("SLURM_JOB_ID")
    return f"{run_name} (job {job_id})" if job_id else f"{run_name} (pid {os.getpid()})"


def file_stamp(path: Path) -> str:
    """What a data file's contribution to a key is: its size and modification time."""
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    return f"{stat.st_size} bytes, modified {dt.datetime.fromtimestamp(stat.st_mtime).isoformat()}"
