"""Expand an experiment's fine-tuned runs, times any sweep given on the command line, into
jobs; name the jobs of any other Hydra app's sweep.

Pure: override strings in, JobSpecs and names out. A job is named after its run, plus the values of
the command-line keys that vary across the sweep (so `+seed=1,-1` gives `r8__seed-1` and
`r8__seed--1`); names are stable across launches and become the job dirs and SLURM job names.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ttlaunch.base.errors import InputError
from ttlaunch.inputs.schema import APP_GROUPS, APP_GROUPS_PREFIX
from ttlaunch.inputs.summary import Experiment, Run
from ttlaunch.job.combination_configs import override_key, shared_overrides

# Keys the sweep sets itself; a user sweeping them would make names meaningless.
RUN_NAME_KEY = "run_name"
JOB_NAME_KEY = "hydra.job.name"
# The overrides each planned job has of its own; the rest are its combination's.
PER_JOB_KEYS = (RUN_NAME_KEY, JOB_NAME_KEY)
_RESERVED_KEYS = {"experiment", RUN_NAME_KEY, JOB_NAME_KEY}
# A name's parts are `key-value` joined by `__`. A value's own sign stays (`y=-2.0` is
# `y--2.0`, never `y-2.0`) and no part holds a run of underscores (`a__b` is `a_b`), so each
# part reads back as the one override it names. No `=`: a name becomes the job's dir, and
# trainers read `output_dir=<job dir>/outputs` as one key=value (torchtune refuses a second).
PART_SEPARATOR = "__"
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_UNDERSCORES = re.compile(r"__+")


@dataclass(frozen=True)
class JobSpec:
    name: str
    overrides: tuple[str, ...]
    run: Run | None = None  # the experiment's run it trains (None for any other Hydra app's job)
    subdir: str | None = None  # its dir in the sweep dir, when not its name (Hydra's hydra.sweep.subdir)

    def job_dir(self, sweep_dir: Path) -> Path:
        return sweep_dir / (self.subdir or self.name)

    @property
    def run_name(self) -> str:
        """The run it trains (every job ttlaunch's own app plans has one)."""
        if self.run is None:
            raise ValueError(f"job {self.name} trains no run of an experiment: it is another Hydra app's")
        return self.run.name


def safe_text(text: str) -> str:
    """`text` in a name: characters other than letters, digits, '.', '_' and '-' become one '-'
    between what they separate (a value's own '-', a sign, is kept); `__` becomes `_`."""
    return _UNDERSCORES.sub("_", "-".join(token for token in _UNSAFE_CHARS.split(text) if token))


def name_part(override: str) -> str:
    """An override as a part of a job name: `lr=0.001` -> `lr-0.001`, `+y=-2.0` -> `y--2.0`,
    `opt=[a,b]` -> `opt-a-b`; a key alone (`~x`) -> `x`."""
    key, equals, value = override.partition("=")
    return f"{safe_text(key.lstrip('+~'))}-{safe_text(value)}" if equals else safe_text(key.lstrip("+~"))


def _suffix(overrides: Sequence[str], swept_keys: set[str]) -> str:
    return "".join(PART_SEPARATOR + name_part(o) for o in overrides if override_key(o) in swept_keys)


def combination_of(overrides: Sequence[str]) -> tuple[str, ...]:
    """A planned job's overrides less its own (its run, its name): its combination's, as the
    job looks its config up (ttlaunch.job.combination_configs)."""
    return shared_overrides(overrides, PER_JOB_KEYS)


def plan_jobs(experiment: Experiment, combinations: Sequence[Sequence[str]]) -> list[JobSpec]:
    """One job per fine-tuned run per combination of command-line overrides.

    `combinations` is the Cartesian product of the command-line overrides, one list of
    `key=value` strings per combination (what Hydra's BasicSweeper.split_arguments makes).
    """
    values: dict[str, set[str]] = {}
    for combination in combinations:
        for override in combination:
            values.setdefault(override_key(override), set()).add(override)
    swept = {key for key, seen in values.items() if len(seen) > 1}
    for key in sorted(swept & _RESERVED_KEYS):
        raise InputError("command line", key, "cannot be swept: ttlaunch sweeps the runs of one experiment")
    jobs: list[JobSpec] = []
    names: dict[str, str] = {}
    for combination in combinations:
        suffix = _suffix(combination, swept)
        user_overrides = combination_of(combination)
        for run in experiment.fine_tuned:
            name = run.name + suffix
            if name in names:
                raise InputError(
                    "command line", "job name", f"two jobs would be named {name!r} ({names[name]} and {combination})"
                )
            names[name] = str(list(combination))
            overrides = (*user_overrides, f"{RUN_NAME_KEY}={run.name}", f"{JOB_NAME_KEY}={name}")
            jobs.append(JobSpec(name=name, overrides=overrides, run=run))
    return jobs


# ttlaunch's config groups, chosen in an app under their prefix (+ttlaunch/compute=...), in a
# sweep of them too: how the sweep is launched, not what a job computes, so not in its name.
LAUNCH_GROUPS = (APP_GROUPS_PREFIX, *APP_GROUPS)
# Longest job name kept whole; a longer one is cut and made unique by a digest.
MAX_NAME_LENGTH = 100


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def _launch_setting(key: str) -> bool:
    return any(key == group or key.startswith((f"{group}.", f"{group}/")) for group in LAUNCH_GROUPS)


def app_job_names(
    job_overrides: Sequence[Sequence[str]], app_name: str, exclude_keys: Sequence[str] = (), fixed_keys: Sequence[str] = ()
) -> list[str]:
    """Names of an app's jobs, from the overrides the sweep varies: each job's overrides as
    Hydra's override_dirname reads them (sorted), without `exclude_keys`, LAUNCH_GROUPS and
    the `fixed_keys` the command line gives one value to, made safe: `lr-0.001__seed-1` for a
    job of `seed=1,2 lr=0.001,0.01 epochs=3` (name_part).
    The app's own name for a job with nothing swept. Stable across launches of the same
    command and batches of its sweep; unique: names that would clash, or be longer than
    MAX_NAME_LENGTH, end with a digest of the overrides."""
    readable: list[str] = []
    left_out = {*exclude_keys, *fixed_keys}
    for overrides in job_overrides:
        kept = sorted(o for o in overrides if override_key(o) not in left_out and not _launch_setting(override_key(o)))
        readable.append(PART_SEPARATOR.join(name_part(o) for o in kept) or safe_text(app_name).strip("-.") or "job")
    names = []
    for overrides, name in zip(job_overrides, readable):
        if readable.count(name) > 1 or len(name) > MAX_NAME_LENGTH:
            name = f"{name[:MAX_NAME_LENGTH - 10]}__{_digest(repr(sorted(overrides)))}"
        names.append(name)
    return names


def _value_of(overrides: Sequence[str], key: str) -> str | None:
    for override in overrides:
        if override_key(override) == key:
            return override.split("=", 1)[1]
    return None


def job_name_of(overrides: Sequence[str]) -> str | None:
    """The job name a planned override list carries (None if it was not planned here)."""
    return _value_of(overrides, JOB_NAME_KEY)


def run_name_of(overrides: Sequence[str]) -> str | None:
    """The run a planned override list is for (None if it was not planned here)."""
    return _value_of(overrides, RUN_NAME_KEY)
