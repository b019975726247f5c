"""A job's plan worked out in the job, from the sweep's inputs: for an evaluation (its
checkpoint is found as it starts) and for a training job the launch saved no plan for (a
rule's follow-up or restart; ttlaunch.job.job_plan)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import yaml
from omegaconf import DictConfig

from ttlaunch.inputs.evaluation_plan import (
    EVAL_CONFIG_NAME,
    TARGET_KEY,
    TASK_ITEM,
    EvaluationTarget,
    checkpoint_of,
    cruijff_evaluation,
    evaluation_command,
    own_caches,
)
from ttlaunch.inputs.input_copies import copies_of, task_copy
from ttlaunch.inputs.launch_inputs import LaunchInputs, read_inputs
from ttlaunch.inputs.payload_command import PayloadCommand
from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.inputs.summary import Run
from ttlaunch.inputs.torchtune_configs import model_dir
from ttlaunch.job.bound_tasks import one_inspect_run
from ttlaunch.job.job_plan import JobPlan, training_plan
from ttlaunch.records.checkpoints import loadable


def plan_from_inputs(cfg: DictConfig, hydra_cfg: DictConfig, job_dir: Path) -> JobPlan:
    """The job's plan from its config and the copies of its run's files its submission took."""
    inputs = replace(read_inputs(cfg, hydra_cfg), copies=copies_of(job_dir))
    run = inputs.run(cfg.run_name)
    target = cfg.get(TARGET_KEY)
    if target is None:
        return training_plan(inputs, run.name, job_dir)
    training_job = target.get("training_job")
    evaluation = EvaluationTarget(
        run.name, tuple(str(task) for task in target.tasks), None if target.epoch is None else int(target.epoch),
        None if training_job is None else str(training_job),
    )
    command = _evaluation_command(inputs, run, evaluation, job_dir, Path(hydra_cfg.sweep.dir))
    return JobPlan(run.name, PayloadKind.evaluation, command, inputs.payload.torchrun, inputs.compute_for(run.name).gpus)


def _evaluation_command(
    inputs: LaunchInputs, run: Run, evaluation: EvaluationTarget, job_dir: Path, sweep_dir: Path
) -> PayloadCommand:
    """The evaluation of one checkpoint of the run (or of a control's base model, an eval-only
    run's checkpoint) on its tasks, with the sweep's copies of the tasks' files: one
    `inspect eval` of them all (ttlaunch.job.bound_tasks)."""
    if evaluation.training_job is None:  # a control's base model, an eval-only run's checkpoint
        saved = inputs.experiment.given_model(run)
        run_output_dir = saved.parent
        base_model = inputs.experiment.base_models.get(run.model or "")
    else:
        # The training job's output dir (its checkpoints), not this evaluation job's, as that job has it.
        training_dir = sweep_dir / evaluation.training_job
        training = replace(inputs, copies=copies_of(training_dir)).payload_for(run.name, training_dir)
        run_output_dir = training.output_dir
        saved = checkpoint_of(inputs.evaluation, evaluation, run_output_dir)
        trained_from = model_dir(training.argv) if inputs.payload_kind is PayloadKind.torchtune else None
        base_model = Path(trained_from) if trained_from else None
    checkpoint = loadable(saved, job_dir / "checkpoint")
    commands = []
    for name in evaluation.tasks:
        task = inputs.experiment.evaluation_task(name)
        copy = task_copy(sweep_dir, task.name, task.script) if task.script is not None else None
        if copy is not None and copy.is_file():  # the sweep's copy
            task = replace(task, script=copy)
        options: tuple[str, ...] = ()
        if task.dataset is not None:  # cruijff_kit's shape: the task reads its settings from eval.yaml
            # Each task's eval.yaml where cruijff_kit has it: beside the evaluation, one dir per task when several.
            config_dir = job_dir if len(evaluation.tasks) == 1 else job_dir / task.name
            options, eval_config = cruijff_evaluation(inputs.experiment, run, task, evaluation, config_dir)
            config_dir.mkdir(parents=True, exist_ok=True)
            (config_dir / EVAL_CONFIG_NAME).write_text(yaml.safe_dump(eval_config, sort_keys=False), encoding="utf-8")
        command = evaluation_command(
            inputs.evaluation, evaluation, run_output_dir, job_dir, task, base_model,
            {**inputs.experiment.controls, **run.parameters}, options, checkpoint, inputs.experiment.evaluation_settings,
        )
        commands.append((task.name, task.script, command))
    command = commands[0][2]
    if len(commands) > 1:
        command = one_inspect_run(commands, inputs.evaluation.command.index(TASK_ITEM), job_dir)
    return replace(command, env={**own_caches(job_dir, os.environ), **command.env})
