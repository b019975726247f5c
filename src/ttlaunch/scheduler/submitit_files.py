"""Where submitit keeps a job's files: `<job dir>/submitit/`, holding `<id>_submitted.pkl`
(the pickled call), on SLURM `<id>_submission.sh` (the batch script), and per task
`<id>_<task>_log.out` / `_log.err` (the job's stdout and stderr) and `<id>_<task>_result.pkl`
(written as the call returns or raises). The one place that knows these names."""

from __future__ import annotations

import pickle
from pathlib import Path

FOLDER = "submitit"
_SUBMITTED = ("_submitted.pkl", "_submission.sh")


def folder(job_dir: Path) -> Path:
    return job_dir / FOLDER


def job_dir_of(submitit_folder: Path) -> Path:
    """The job dir whose submitit folder this is (inside a job: submitit's JobEnvironment's folder)."""
    return submitit_folder.parent


def task_log_patterns(folder: Path) -> tuple[Path, Path]:
    """Every task's stdout and stderr, as sbatch/srun patterns (%j the job, %t the task)."""
    return folder / "%j_%t_log.out", folder / "%j_%t_log.err"


def log_paths(job_dir: Path, job_id: str) -> tuple[Path, Path]:
    """Task 0's stdout and stderr."""
    return folder(job_dir) / f"{job_id}_0_log.out", folder(job_dir) / f"{job_id}_0_log.err"


def result_path(log_dir: Path, job_id: str) -> Path:
    """Task 0's result pickle, beside its logs."""
    return log_dir / f"{job_id}_0_result.pkl"


def read_result(job_dir: Path, job_id: str) -> tuple[str, object] | None:
    """What task 0's call returned, as submitit pickled it: ("success", value) or ("error",
    the traceback's text); None when there is none (yet) or it cannot be read."""
    try:
        with result_path(folder(job_dir), job_id).open("rb") as stream:
            outcome = pickle.load(stream)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None
    if isinstance(outcome, tuple) and len(outcome) == 2 and outcome[0] in ("success", "error"):
        return outcome[0], outcome[1]
    return None


def returned_value(job_dir: Path, job_id: str) -> str | int | float | bool | None:
    """What a completed job's Hydra task function returned, for the records: a number, a
    word or a bool as it is, anything else as its repr (cut at 200 characters); None when the
    job left no readable result, or the task returned None."""
    outcome = read_result(job_dir, job_id)
    if outcome is None or outcome[0] != "success":
        return None
    value = getattr(outcome[1], "_return_value", None)  # a JobReturn (hydra.core.utils)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)[:200]


def submitted_job_ids(job_dir: Path) -> list[str]:
    """The ids of every job submitted from this job dir, oldest first: submitit names its
    pickled call (and, on SLURM, its script) after the job once the submission answered."""
    found: dict[str, float] = {}
    for suffix in _SUBMITTED:
        for path in folder(job_dir).glob(f"*{suffix}"):
            job_id = path.name[: -len(suffix)]
            if job_id.isdigit():
                found[job_id] = min(found.get(job_id, float("inf")), path.stat().st_mtime)
    return sorted(found, key=lambda job_id: (found[job_id], int(job_id)))


def link_folder(template: str, job_dir: Path, job_id: str) -> None:
    """hydra-submitit-launcher's `submitit_folder` (`%j`: the job id), as a link to the job's
    own submitit folder, so what reads logs where that launcher put them still finds them. A
    template without %j (one folder for all jobs) gets a link per file of the job instead."""
    target = folder(job_dir).absolute()
    if "%j" in template:
        links = [(Path(template.replace("%j", job_id)), target)]
    else:
        names = [f"{job_id}{suffix}" for suffix in _SUBMITTED]
        names += [f"{job_id}_0_{end}" for end in ("log.out", "log.err", "result.pkl")]
        links = [(Path(template) / name, target / name) for name in names]
    for link, points_to in links:
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink() and not link.exists():  # a requeue keeps its id: linked already
            link.symlink_to(points_to)


def job_dirs(sweep_dir: Path) -> list[str]:
    """Job names of the sweep's job dirs: each holds a submitit folder (an evaluation's name
    is its nested path, run/task/epochN). Hidden dirs are ttlaunch's own (the monitor job's)."""
    return sorted(
        str(path.parent.relative_to(sweep_dir)) for path in sweep_dir.rglob(FOLDER)
        if path.is_dir() and not path.relative_to(sweep_dir).parts[0].startswith(".")
    )


def has_batch_script(sweep_dir: Path) -> bool:
    """Some job of the sweep went to SLURM (local jobs have no batch script)."""
    return any(sweep_dir.rglob(f"*{_SUBMITTED[1]}"))
