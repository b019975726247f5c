"""What one job asks the scheduler for, as data.

A request is built from the compute preset, the requeue choice and the user's
settings by pure functions, rendered as its batch script for a dry run (`script`), and
only turned into submitit parameters at the edge (the backends' `submit`).
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ttlaunch.base import environment
from ttlaunch.base.errors import InputError
from ttlaunch.inputs.sbatch_values import flag_name
from ttlaunch.inputs.schema import ComputeConfig, RequeueConfig, UserConfig
from ttlaunch.job.requeue import RequeuePolicy
from ttlaunch.scheduler import submitit_files

# sbatch flags that have a typed field in SlurmRequest; extra parameters naming them
# set the field instead of adding a second, conflicting flag.
_TYPED_FLAGS = {"partition", "qos", "account", "gres", "constraint"}
# Owned by requeue=on|off; an extra parameter must not contradict it behind its back.
_REQUEUE_FLAGS = {"requeue", "no-requeue"}


def time_limit_s(timeout_min: int) -> int:
    """The time limit asked for, in seconds: as jobs.json records it, and the job's requeue
    budget reads it."""
    return 60 * timeout_min


@dataclass(frozen=True)
class SubmititOptions:
    """How submitit runs every job of a launch: hydra-submitit-launcher's settings of that
    name (hydra.launcher.*)."""

    stderr_to_stdout: bool = False
    srun_args: tuple[str, ...] = ()  # SLURM: more arguments of the srun that starts the tasks
    use_srun: bool = True  # SLURM: false runs the one task in the batch script itself
    # submitit_folder: a path (%j: the job id) linked to each job's submitit files.
    folder: str | None = None


@dataclass(frozen=True)
class SlurmRequest:
    job_name: str
    partition: str | None
    qos: str | None
    account: str | None
    gres: str | None
    constraint: str | None
    nodes: int
    tasks_per_node: int
    cpus_per_task: int | None
    gpus_per_node: int | str | None
    mem_gb: float | None
    timeout_min: int
    requeue_policy: RequeuePolicy | None  # None: requeue=off
    signal_delay_s: int
    additional_parameters: Mapping[str, object] = field(default_factory=dict)
    setup: tuple[str, ...] = ()
    options: SubmititOptions = SubmititOptions()
    # Which settings the user's values replaced, for the launch log.
    notes: tuple[str, ...] = ()
    # Timeouts submitit itself requeues the job for, by its callable's checkpoint (the monitor
    # job's way back); a run's are counted by its RequeuePolicy alone, so 0. Either way requeues.
    submitit_timeouts: int = 0

    def _flags(self) -> dict[str, object]:
        """The sbatch flags of the typed fields, by submitit's names (underscores)."""
        flags: dict[str, object] = {
            "job_name": self.job_name,
            "nodes": self.nodes,
            "ntasks_per_node": self.tasks_per_node,
            "time": self.timeout_min,
        }
        optional = {
            "partition": self.partition,
            "qos": self.qos,
            "account": self.account,
            "gres": self.gres,
            "constraint": self.constraint,
            "cpus_per_task": self.cpus_per_task,
            "gpus_per_node": self.gpus_per_node,
            "mem": _mem(self.mem_gb) if self.mem_gb is not None else None,
        }
        flags.update({key: value for key, value in optional.items() if value is not None})
        return flags

    def _additional(self) -> dict[str, object]:
        requeued = self.requeue_policy is not None or self.submitit_timeouts > 0
        return {**self.additional_parameters, ("requeue" if requeued else "no-requeue"): True}

    def _setup(self) -> list[str]:
        setup = list(self.setup)
        if self.requeue_policy is not None:  # the budget, for the job (ttlaunch.job.requeue)
            setup.append(f"export {environment.REQUEUE_POLICY}={shlex.quote(self.requeue_policy.as_variable())}")
        return setup

    def submitit_parameters(self) -> dict[str, object]:
        """Parameters for submitit's SlurmExecutor.update_parameters (its sbatch names)."""
        params = {
            **self._flags(), "signal_delay_s": self.signal_delay_s, "additional_parameters": self._additional(),
            "stderr_to_stdout": self.options.stderr_to_stdout, "use_srun": self.options.use_srun,
        }
        if self.options.srun_args:
            params["srun_args"] = list(self.options.srun_args)
        setup = self._setup()
        if setup:
            params["setup"] = setup
        return params

    def script(self, folder: Path, python: str = shlex.quote(sys.executable)) -> str:
        """The batch script that submitting this request writes, for a dry run: submitit's
        layout (its #SBATCH flags sorted, the setup lines, then srun starting submitit's job
        runner on the job's folder). A test on the real cluster compares it with a submission's."""
        folder = folder.absolute()
        stdout, stderr = (str(path) for path in submitit_files.task_log_patterns(folder))
        flags = {
            **self._flags(), "signal": f"USR2@{self.signal_delay_s}", "wckey": "submitit",
            "output": stdout.replace("%t", "0"), "open-mode": "append", **self._additional(),
        }
        if not self.options.stderr_to_stdout:
            flags["error"] = stderr.replace("%t", "0")
        lines = ["#!/bin/bash", "", "# Parameters"]
        lines += [_sbatch_line(key, flags[key]) for key in sorted(flags)]
        setup = self._setup()
        if setup:
            lines += ["", "# setup", *setup]
        command = f"{python} -u -m submitit.core._submit {shlex.quote(str(folder))}"
        if self.options.use_srun:
            errors = [] if self.options.stderr_to_stdout else ["--error", stderr]
            command = f"{shlex.join(['srun', '--unbuffered', '--output', stdout, *errors, *self.options.srun_args])} {command}"
        lines += ["", "# command", "export SUBMITIT_EXECUTOR=slurm", command, ""]
        return "\n".join(lines)

    @property
    def time_limit_s(self) -> int:
        return time_limit_s(self.timeout_min)


@dataclass(frozen=True)
class LocalRequest:
    job_name: str
    timeout_min: int
    gpus_per_node: int
    stderr_to_stdout: bool = False

    def submitit_parameters(self) -> dict[str, object]:
        return {"timeout_min": self.timeout_min, "gpus_per_node": self.gpus_per_node, "stderr_to_stdout": self.stderr_to_stdout}

    @property
    def time_limit_s(self) -> int:
        return time_limit_s(self.timeout_min)


def _sbatch_line(key: str, value: object) -> str:
    key = key.replace("_", "-")
    return f"#SBATCH --{key}" if value is True else f"#SBATCH --{key}={shlex.quote(str(value))}"


def _mem(mem_gb: float) -> str:
    """sbatch --mem in the form submitit itself writes (whole GB, else MB)."""
    return f"{int(mem_gb)}GB" if float(mem_gb).is_integer() else f"{int(mem_gb * 1024)}MB"


def merge_additional_parameters(
    preset: Mapping[str, object], user: Mapping[str, object], source: str
) -> tuple[dict[str, object], list[str]]:
    """Merge the preset's extra sbatch flags with the user's: the user's win, and each
    replacement is reported (returned as a note), never dropped silently."""
    merged: dict[str, object] = {}
    notes: list[str] = []
    for origin, params in (("compute", preset), ("user.slurm", user)):
        for key, value in params.items():
            name = flag_name(str(key))
            if name in _REQUEUE_FLAGS:
                raise InputError(
                    source, f"{origin}.additional_parameters.{key}", "requeue is set by requeue=on|off, not here"
                )
            if name in merged and merged[name] != value:
                notes.append(f"{origin}.additional_parameters.{name}={value} replaces {merged[name]}")
            merged[name] = value
    return merged, notes


def slurm_request(
    job_name: str,
    compute: ComputeConfig,
    requeue: RequeueConfig,
    user: UserConfig,
    signal_delay_s: int,
    source: str,
    options: SubmititOptions = SubmititOptions(),
    submitit_timeouts: int = 0,
) -> SlurmRequest:
    if requeue.enabled and not 0 <= requeue.grace_s < signal_delay_s:
        raise InputError(
            "requeue", "grace_s",
            f"{requeue.grace_s} s to save must be below hydra.launcher.signal_delay_s ({signal_delay_s} s), "
            "the warning's lead time before the time limit",
        )
    extra, notes = merge_additional_parameters(
        compute.additional_parameters, user.slurm.additional_parameters, source
    )
    typed: dict[str, str | None] = {
        "partition": compute.partition,
        "qos": compute.qos,
        "account": compute.account,
        "gres": _gres(compute),
        "constraint": compute.constraint,
    }
    if user.slurm.account is not None:
        if typed["account"] not in (None, user.slurm.account):
            notes.append(f"user.slurm.account={user.slurm.account} replaces compute account {typed['account']}")
        typed["account"] = user.slurm.account
    for name in sorted(_TYPED_FLAGS & set(extra)):
        value = extra.pop(name)
        if typed[name] not in (None, value):
            notes.append(f"additional_parameters.{name}={value} replaces {name}={typed[name]}")
        typed[name] = str(value)  # an sbatch flag's value, as the user wrote it
    return SlurmRequest(
        job_name=job_name,
        nodes=compute.nodes,
        tasks_per_node=compute.tasks_per_node,
        cpus_per_task=compute.cpus_per_task,
        gpus_per_node=_gpus_per_node(compute),
        mem_gb=compute.mem_gb,
        timeout_min=compute.timeout_min,
        requeue_policy=RequeuePolicy(
            max_num_timeout=requeue.max_num_timeout, grace_s=requeue.grace_s,
            time_limit_s=time_limit_s(compute.timeout_min), signal_delay_s=signal_delay_s,
        ) if requeue.enabled else None,
        signal_delay_s=signal_delay_s,
        additional_parameters=extra,
        setup=tuple(compute.setup),
        options=options,
        notes=tuple(notes),
        submitit_timeouts=submitit_timeouts,
        **typed,
    )


def _gres(compute: ComputeConfig) -> str | None:
    """--gres: the preset's other resources, plus the GPUs (compute.gpus_per_node of
    compute.gpu_type) where the cluster asks for GPUs that way and gres does not name them."""
    if compute.gpu_request != "gres" or not compute.gpus or compute.gres_gpus is not None:
        return compute.gres
    gpus = f"gpu:{compute.gpu_type}:{compute.gpus}" if compute.gpu_type else f"gpu:{compute.gpus}"
    return ",".join(part for part in (compute.gres, gpus) if part)


def _gpus_per_node(compute: ComputeConfig) -> int | str | None:
    """--gpus-per-node, for clusters that ask for GPUs that way ([type:]N)."""
    if compute.gpu_request != "gpus_per_node" or not compute.gpus:
        return None
    return f"{compute.gpu_type}:{compute.gpus}" if compute.gpu_type else compute.gpus


def local_request(job_name: str, compute: ComputeConfig, options: SubmititOptions = SubmititOptions()) -> LocalRequest:
    return LocalRequest(
        job_name=job_name, timeout_min=compute.timeout_min, gpus_per_node=compute.gpus, stderr_to_stdout=options.stderr_to_stdout
    )


@dataclass(frozen=True)
class SubmissionSettings:
    """What every job of a launch is submitted with, beside its own compute."""

    requeue: RequeueConfig
    user: UserConfig
    signal_delay_s: int
    compute_source: str  # where the compute came from, for errors (compute=<preset>)
    submitit: SubmititOptions = SubmititOptions()
    submitit_timeouts: int = 0  # SlurmRequest.submitit_timeouts (the monitor job's)
