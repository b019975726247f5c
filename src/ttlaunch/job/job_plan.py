"""What a job runs, as one record: its command, its kind, how it starts on its GPUs.

A run's training job learns it from the launch: as the launch submits the job it works the
plan out from the copies of the run's files the submission took (ttlaunch.inputs.input_copies)
and saves it in the job's dir (`job_plan.json`), and the job reads that one file instead of
reading and composing the experiment's files again (in a trivial job, reading them and
loading their readers were about 8% of its CPU). A job whose inputs the launch does not hold
(a rule's follow-up or restart, with overrides of its own; an evaluation, whose checkpoint
is found as it starts) works its plan out itself (ttlaunch.job.plan_from_inputs, with the same
training_plan): its submission removes the plan an earlier job of its dir left.

Few imports: every job loads this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ttlaunch.base.errors import DamagedFile
from ttlaunch.base.files import write_atomically
from ttlaunch.inputs.payload_command import PayloadCommand
from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.records.tracker_file import Scalar

if TYPE_CHECKING:  # a job with a plan does not load the input readers
    from ttlaunch.inputs.launch_inputs import LaunchInputs

PLAN_NAME = "job_plan.json"


@dataclass(frozen=True)
class JobPlan:
    run_name: str
    kind: PayloadKind
    command: PayloadCommand
    torchrun: bool  # payload.torchrun: a command started under torchrun
    gpus: int  # the GPUs each node of the job gets
    # A training job's point in experiment trackers (ttlaunch.job.tracker): its group (the
    # experiment; "" for an evaluation, which has none) and the run's swept parameters.
    experiment: str = ""
    parameters: Mapping[str, Scalar] = field(default_factory=dict)


def training_plan(inputs: LaunchInputs, run_name: str, job_dir: Path) -> JobPlan:
    """What a training job of the run runs (from `inputs.copies`, where the job has copies)."""
    return JobPlan(
        run_name, inputs.payload_kind, inputs.payload_for(run_name, job_dir), inputs.payload.torchrun,
        inputs.compute_for(run_name).gpus, inputs.experiment.name, dict(inputs.run(run_name).parameters),
    )


def save_plan(job_dir: Path, plan: JobPlan | None) -> None:
    """The plan of the job about to be submitted from `job_dir`; None: it works its own out,
    and an earlier job's plan there goes."""
    path = job_dir / PLAN_NAME
    if plan is None:
        path.unlink(missing_ok=True)
        return
    command = plan.command
    saved = {
        "run_name": plan.run_name, "kind": plan.kind.value, "argv": list(command.argv), "env": dict(command.env),
        "output_dir": str(command.output_dir), "setup": [list(argv) for argv in command.setup],
        "prepare": [list(argv) for argv in command.prepare], "cwd": str(command.cwd) if command.cwd else None,
        "torchrun": plan.torchrun, "gpus": plan.gpus, "experiment": plan.experiment, "parameters": dict(plan.parameters),
    }
    job_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(saved, indent=1) + "\n")


def load_plan(job_dir: Path) -> JobPlan | None:
    """The plan its submission saved in `job_dir`; None when it saved none."""
    path = job_dir / PLAN_NAME
    try:
        saved: Any = json.loads(path.read_text(encoding="utf-8"))  # JSON, checked just below
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise DamagedFile(path, f"unreadable ({err})", "submit the job again (the launch command writes it anew)") from None
    try:
        command = PayloadCommand(
            argv=tuple(saved["argv"]), env=dict(saved["env"]), output_dir=Path(saved["output_dir"]),
            setup=tuple(tuple(argv) for argv in saved["setup"]), prepare=tuple(tuple(argv) for argv in saved["prepare"]),
            cwd=Path(saved["cwd"]) if saved["cwd"] else None,
        )
        return JobPlan(
            saved["run_name"], PayloadKind(saved["kind"]), command, bool(saved["torchrun"]), int(saved["gpus"]),
            str(saved["experiment"]), dict(saved["parameters"]),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise DamagedFile(path, f"not a job plan ({err!r})", "submit the job again (the launch command writes it anew)") from None
