"""Any Hydra app's sweep, through ttlaunch's launcher (`hydra/launcher=ttlaunch_local` or
`ttlaunch_slurm`), in the launching process.

Hydra's basic sweeper hands over the sweep's override lists; here they become named jobs
(ttlaunch.submit.sweep_jobs.app_job_names) whose dirs are where Hydra puts their outputs
(`hydra.sweep.dir`/`hydra.sweep.subdir`). Then through the launch path ttlaunch's own app
takes too (ttlaunch.submit.sweep_launch): the inputs are checked before anything is written,
the sweep's lock is taken, what earlier launches left is learnt (their records, then SLURM),
only jobs never submitted (or stopped by ttlaunch) are submitted, and the monitor follows
them. What each job returned comes back from its result file, so the sweeper sees the task
functions' return values, for this launch's jobs and for the ones an earlier launch
completed alike.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from hydra.core.config_loader import ConfigLoader
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from ttlaunch.backend.job_requests import SubmissionSettings
from ttlaunch.base.errors import InputError, SweepFailed
from ttlaunch.inputs.launch_inputs import LaunchInputs, command_line_fixed_keys, read_scheduling
from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.inputs.schema import APP_GROUPS_PREFIX, ComputeConfig, TrainingMetricsConfig, UserConfig, check_metrics
from ttlaunch.job.combination_configs import CombinationConfigs, override_key
from ttlaunch.monitor.callback import find_monitor
from ttlaunch.records.event_log import EVENT_LOG_NAME
from ttlaunch.records.jobs_file import JobRecord, SweepState
from ttlaunch.records.ledger import Ledger
from ttlaunch.records.provenance import record_launch, work_tree
from ttlaunch.scheduler.states import JobState
from ttlaunch.scheduler.submitit_files import read_result
from ttlaunch.submit.code_snapshot import repository_of, take_snapshot, untracked_line
from ttlaunch.submit.plugin_protocols import Launcher
from ttlaunch.submit.submitter import Submission
from ttlaunch.submit.sweep_jobs import JobSpec, app_job_names
from ttlaunch.submit.sweep_launch import check_settings, ended_without_completing, launch, writable

# Interpolations of hydra.sweep.subdir known at launch without composing each job's config.
_KNOWN_AT_LAUNCH = ("hydra.job.num", "hydra.job.name", "hydra.job.override_dirname")
_INTERPOLATION = re.compile(r"\$\{([^}]*)\}")

log = logging.getLogger(__name__)


@dataclass
class AnyAppLaunch:
    """Any other Hydra app's launch (an AppLaunch of ttlaunch.submit.sweep_launch): the jobs
    of this batch of its sweep, and what they run."""

    name: str
    sweep_dir: Path
    jobs: Sequence[JobSpec]
    settings: SubmissionSettings
    compute: ComputeConfig
    config: DictConfig  # the app's primary config, as Hydra composed it
    task_function: TaskFunction
    metrics: TrainingMetricsConfig  # where the app logs its losses (hydra.launcher.metrics)
    first_index: int  # the batch's first job's number in the sweep (hydra.job.num)
    code_dir: Path  # the task function's module's dir
    repository: Path | None  # the repository snapshotted for the jobs (hydra.launcher.snapshot), else None
    resubmit_failed: bool
    resubmit_hint: str = "hydra.launcher.resubmit_failed=true"
    # No rules or evaluations react to an app's jobs.
    inputs: LaunchInputs | None = None
    combination_inputs: Mapping[tuple[str, ...], LaunchInputs] = field(default_factory=dict)

    def submissions(self, jobs: Sequence[JobSpec]) -> list[Submission]:
        numbers = {job.name: self.first_index + offset for offset, job in enumerate(self.jobs)}
        return [
            Submission(
                index=numbers[job.name], name=job.name, overrides=list(job.overrides), job_dir=job.job_dir(self.sweep_dir),
                compute=self.compute, command=_task_line(self.task_function, job.overrides),
                spec={"parameters": _parameters(job.overrides)},
            )
            for job in jobs
        ]

    def job_configs(self, submissions: Sequence[Submission]) -> CombinationConfigs | None:
        return None  # each job composes its own config, as Hydra's submitit launcher has it

    def check_records(self, ledger: Ledger) -> list[str]:
        return []  # an app's jobs are what its overrides say: nothing to compare with earlier submissions

    def describe(self, state: SweepState) -> None:
        state.payload_kind = PayloadKind.app
        state.metrics_pattern, state.metrics_jsonl = self.metrics.pattern, self.metrics.jsonl
        # The losses the app logs when it says where, else the task function's return value.
        measured = self.metrics.pattern is not None or self.metrics.jsonl is not None
        state.sort_by = "final_loss" if measured else "returned"

    def record_launch(self, ledger: Ledger) -> tuple[Sequence[str], str]:
        sweep_dir = self.sweep_dir
        # The app's whole repository: its configs and modules outside the task's dir are its code too.
        app_tree = self.repository or work_tree(self.code_dir)[0] or self.code_dir
        launch = writable(sweep_dir, lambda: record_launch(sweep_dir, sys.argv, OmegaConf.to_yaml(self.config), {"app": app_tree}))
        snapshot = None
        if self.repository is not None:
            repository = self.repository
            snapshot = writable(sweep_dir, lambda: take_snapshot(repository, sweep_dir, f"launch-{launch['launch']}"))
        ledger.events.write(
            "DISCOVER_EXPERIMENT",
            "Found Hydra app",
            ("Details", _task_name(self.task_function)),
            ("Result", f"App {self.name} has {len(self.jobs)} jobs in this batch of its sweep"),
            *([("Code", f"{snapshot.files} files of {snapshot.repository}, copied to {snapshot.directory}")] if snapshot else []),
        )
        left_out = untracked_line(snapshot) if snapshot is not None else None
        if left_out is not None:
            log.warning(left_out)
        details = f"{len(self.jobs)} jobs of {self.name}'s sweep, from #{self.first_index}"
        return (snapshot.import_paths(sys.path) if snapshot else ()), details

    def returns(self, records: Mapping[str, JobRecord]) -> list[JobReturn]:
        """What each job's task function returned, read back from its result file; FAILED
        with the sweep's failures; UNKNOWN while it runs on."""
        failed = [job.name for job in self.jobs if ended_without_completing(records.get(job.name))]
        failure = SweepFailed(failed, len(self.jobs), str(self.sweep_dir / EVENT_LOG_NAME)) if failed else None
        return [_job_return(job, records.get(job.name), failure) for job in self.jobs]


def launch_app(launcher: Launcher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    """Check the app's launch settings and plan this batch of its sweep (before anything is
    written), then launch it through the one launch path."""
    config, context, task_function = launcher.config, launcher.hydra_context, launcher.task_function
    assert config is not None and context is not None and task_function is not None  # Hydra sets them up before it launches
    callback = find_monitor(context.callbacks)
    check_settings(launcher, callback)
    check_metrics(launcher.metrics, "hydra.launcher", "metrics", "job's")
    scheduling = read_scheduling(config, config.hydra, groups=f"{APP_GROUPS_PREFIX}/")
    app_name = launcher.sweep_name or str(config.hydra.job.name)
    code_dir = _code_dir(task_function)
    app = AnyAppLaunch(
        name=app_name, sweep_dir=Path(str(config.hydra.sweep.dir)).absolute(),
        jobs=plan_app_jobs(config, context.config_loader, job_overrides, initial_job_idx, app_name),
        settings=SubmissionSettings(
            scheduling.requeue, UserConfig(), launcher.signal_delay_s, scheduling.compute_source, launcher.submitit_options
        ),
        compute=scheduling.compute, config=config, task_function=task_function, metrics=launcher.metrics,
        first_index=initial_job_idx, code_dir=code_dir,
        repository=repository_of(code_dir) if launcher.snapshot else None,  # none: one line before anything is written
        resubmit_failed=launcher.resubmit_failed,
    )
    return launch(app, launcher, callback)


def plan_app_jobs(
    config: DictConfig, config_loader: ConfigLoader, job_overrides: Sequence[Sequence[str]], initial_job_idx: int, app_name: str
) -> list[JobSpec]:
    """The jobs, named after their swept overrides, each with the dir Hydra will run it in."""
    dirname = config.hydra.job.config.override_dirname
    fixed = command_line_fixed_keys(OmegaConf.select(config, "hydra.overrides.task", default=None) or [])
    names = app_job_names(job_overrides, app_name, list(dirname.exclude_keys), sorted(fixed))
    sweep = OmegaConf.to_container(config.hydra.sweep, resolve=False)  # as written: interpolations unresolved
    subdir = sweep.get("subdir") if isinstance(sweep, dict) else None
    references = _INTERPOLATION.findall(str(subdir))
    if any(reference.strip() == "hydra.job.id" for reference in references):
        raise InputError(
            "hydra.sweep.subdir", "hydra.job.id",
            f"{subdir} names each job's dir after its scheduler id, which is known only once it runs; "
            "ttlaunch needs the dir at submission (use ${hydra.job.num} or ${hydra.job.override_dirname})",
        )
    jobs: list[JobSpec] = []
    seen: dict[str, str] = {}
    for offset, (name, overrides) in enumerate(zip(names, job_overrides)):
        number = initial_job_idx + offset
        if all(reference.strip() in _KNOWN_AT_LAUNCH for reference in references):
            values = {
                "hydra.job.num": str(number), "hydra.job.name": str(config.hydra.job.name),
                "hydra.job.override_dirname": _override_dirname(overrides, dirname),
            }
            resolved = _INTERPOLATION.sub(lambda found: values[found.group(1).strip()], str(subdir))
        else:  # it reads the job's own config: compose it as the job will
            sweep_config = config_loader.load_sweep_config(config, list(overrides))
            with open_dict(sweep_config.hydra.job):
                sweep_config.hydra.job.num = number
            resolved = str(sweep_config.hydra.sweep.subdir)
        if resolved in seen:
            raise InputError(
                "hydra.sweep.subdir", str(subdir),
                f"jobs {seen[resolved]} and {name} would share the dir {resolved}: name each job's dir apart",
            )
        seen[resolved] = name
        jobs.append(JobSpec(name=name, overrides=tuple(overrides), subdir=resolved))
    return jobs


def _override_dirname(overrides: Sequence[str], settings: DictConfig) -> str:
    """hydra.job.override_dirname as Hydra computes it for a job (its config loader does)."""
    kept = sorted(o for o in overrides if override_key(o) not in list(settings.exclude_keys))
    return str(settings.item_sep).join(kept).replace("=", str(settings.kv_sep))


def _parameters(overrides: Sequence[str]) -> dict[str, str]:
    """A job's overrides as the results table's parameters (key -> value as written)."""
    return {override_key(o): o.split("=", 1)[1] for o in overrides if "=" in o}


def _task_name(task_function: object) -> str:
    """`train_app.py:Train` for a script's task function, `package.module.train` otherwise."""
    module = getattr(task_function, "__module__", None) or "?"
    name = getattr(task_function, "__qualname__", None) or type(task_function).__qualname__
    script = getattr(sys.modules.get("__main__"), "__file__", None) if module == "__main__" else None
    return f"{Path(script).name}:{name}" if script else f"{module}.{name}"


def _code_dir(task_function: object) -> Path:
    """The directory of the module that defines the task function (where the launch ran when
    that cannot be told)."""
    module_name = getattr(task_function, "__module__", None) or type(task_function).__module__
    source = getattr(sys.modules.get(module_name), "__file__", None)
    return Path(source).resolve().parent if source else Path.cwd()


def _task_line(task_function: object, overrides: Sequence[str]) -> list[str]:
    """What the job runs, as a dry run shows it."""
    return [f"{_task_name(task_function)}(cfg)", "with", *overrides] if overrides else [f"{_task_name(task_function)}(cfg)"]


class UnfinishedJobReturn(JobReturn):
    """A job still queued or running when the launch returns (detached, or monitoring off):
    status UNKNOWN and no value yet. Hydra's own JobReturn asserts when a sweeper reads the
    value of an UNKNOWN job, as its basic sweeper does with every job it launched."""

    @property  # type: ignore[misc]  # read-only here: an unfinished job's value is not known
    def return_value(self) -> None:
        return None


def _job_return(job: JobSpec, record: JobRecord | None, failure: SweepFailed | None) -> JobReturn:
    """Hydra's view of a job: the JobReturn its task function produced (read back from the
    job's result file), FAILED with the sweep's failures, or UNKNOWN while it runs on."""
    if record is None or not record.status.terminal:
        return UnfinishedJobReturn(overrides=list(job.overrides), status=JobStatus.UNKNOWN)
    if record.status is JobState.COMPLETED:
        outcome = read_result(Path(str(record.job_dir)), str(record.job_id)) if record.job_id else None
        if outcome is not None and outcome[0] == "success" and isinstance(outcome[1], JobReturn):
            return outcome[1]
        return JobReturn(overrides=list(job.overrides), status=JobStatus.COMPLETED)
    return JobReturn(overrides=list(job.overrides), status=JobStatus.FAILED, _return_value=failure)
