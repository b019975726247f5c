"""The evaluation trigger: each evaluation job of the matrix (ttlaunch.inputs.evaluation_plan:
a checkpoint's tasks) is submitted by the monitor as soon as its epoch's checkpoint is
complete, then monitored like a training job (STATE_CHANGE, COMPUTE_METRICS, RESOURCE_STATUS).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

from ttlaunch.inputs.evaluation_plan import EvaluationTarget, checkpoint_of
from ttlaunch.inputs.schema import EvaluationConfig
from ttlaunch.monitor.actions import Capabilities
from ttlaunch.monitor.poll_failures import Containment
from ttlaunch.records.checkpoints import adapter_file
from ttlaunch.records.jobs_file import JobKind, JobRecord
from ttlaunch.records.ledger import Ledger
from ttlaunch.scheduler.states import JobState

log = logging.getLogger(__name__)


def checkpoint_ready(config: EvaluationConfig, target: EvaluationTarget, run_output_dir: Path) -> bool:
    """Whether the evaluation's epoch is saved whole: its ready file (written last) is in the
    epoch dir, or in adapter_weights/ once cruijff_kit's post step moved it there, which it
    does right after training: a monitor that looks later still sees the last epoch ready."""
    return adapter_file(checkpoint_of(config, target, run_output_dir), config.ready_file).is_file()


class EvaluationTrigger:
    """Submits each planned evaluation once its checkpoint is ready (a monitor reaction)."""

    name = "evaluations"  # the stage named when handling a job fails

    def __init__(
        self, targets: Sequence[EvaluationTarget], config: EvaluationConfig, ledger: Ledger, capabilities: Capabilities,
        given_models: Mapping[str, Path] = {},
    ) -> None:
        self.targets = list(targets)
        self.config = config
        self.ledger = ledger
        self.capabilities = capabilities
        # The model each run the sweep does not train is evaluated on (a control's base model).
        self.given_models = dict(given_models)

    def on_transition(self, job: str, record: JobRecord, previous: JobState, current: JobState) -> None:
        return None  # checkpoints, not states, start evaluations

    def after_poll(self, faults: Containment) -> None:
        for target in self.targets:
            faults.run(target.job_name, self.name, lambda: self._submit_when_ready(target))
        self.ledger.save()

    def _submit_when_ready(self, target: EvaluationTarget) -> None:
        jobs = self.ledger.state.jobs
        if target.job_name in jobs:
            return
        if target.training_job is None:  # a model the sweep does not train: ready once it is there
            # It inherits the launch's command line from a training job of the sweep.
            template = next((name for name, record in jobs.items() if record.kind is JobKind.TRAINING), None)
            if template is None:
                return
            model = self.given_models.get(target.run)
            still_training = any(record.kind is JobKind.TRAINING and not record.status.terminal for record in jobs.values())
            if model is not None and not model.is_dir() and still_training:  # the sweep's preparation makes it
                return
            self.capabilities.submit(target.job_name, target.run, template, target.overrides, evaluation=True)
            self._mark(target)
            log.info("%s: evaluation %s of its model as it is submitted", target.run, target.job_name)
            return
        training = jobs.get(target.training_job)
        if training is None or not training.output_dir or not checkpoint_ready(self.config, target, Path(training.output_dir)):
            return
        self.capabilities.submit(target.job_name, target.run, target.training_job, target.overrides, evaluation=True)
        self._mark(target)
        log.info("%s: epoch %d checkpoint ready; evaluation %s submitted", target.run, target.epoch, target.job_name)

    def _mark(self, target: EvaluationTarget) -> None:
        record = self.ledger.state.jobs[target.job_name]
        record.kind, record.tasks = JobKind.EVALUATION, list(target.tasks)

    @property
    def pending(self) -> bool:
        """An evaluation still to submit: of a model the sweep does not train, or of an epoch
        whose run still trains."""
        jobs = self.ledger.state.jobs
        return any(
            target.job_name not in jobs
            and (
                target.training_job is None
                or (target.training_job in jobs and not jobs[target.training_job].status.terminal)
            )
            for target in self.targets
        )
