"""The kinds of payload a job runs: one word each, and what a kind answers for itself.

Inside a job, each kind's own ways (its argv at an attempt, its resume decision, its part
of the sweep's preparation, its start under torchrun) are ttlaunch.job.job_payloads'.
"""

from __future__ import annotations

from enum import Enum

from ttlaunch.base.errors import InputError


class PayloadKind(str, Enum):
    """What a job runs (jobs.json's `payload_kind`, the payload config's `kind`). Its members
    are named by their words: OmegaConf reads an Enum setting by member name."""

    torchtune = "torchtune"  # a torchtune recipe (`tune run`), as the run's scaffold or the payload config asks
    command = "command"  # any argv, given the run's parameters through placeholders
    app = "app"  # the task function of any other Hydra app launched through ttlaunch's launcher
    evaluation = "evaluation"  # one task's evaluation of one checkpoint (inspect-ai, or a command)

    @property
    def saves_epochs(self) -> bool:
        """Its runs save a checkpoint per epoch in torchtune's layout (epoch_N/): they resume from
        the newest, are validated when they end, and their epochs are what evaluations score."""
        return self is PayloadKind.torchtune

    @property
    def logs_torchtune_metrics(self) -> bool:
        """Its progress is torchtune's metric lines and progress bar (else: the pattern or JSONL
        file the user names, or nothing)."""
        return self is PayloadKind.torchtune


# What a run's payload config may choose (an app's and an evaluation's are ttlaunch's own).
TRAINING_KINDS = (PayloadKind.torchtune, PayloadKind.command)


def training_kind(kind: PayloadKind, source: str) -> PayloadKind:
    """payload.kind, one a run's payload config may choose; InputError naming the file and
    field otherwise (OmegaConf has refused a word that is no kind at all)."""
    if kind in TRAINING_KINDS:
        return kind
    expected = " or ".join(kind.value for kind in TRAINING_KINDS)
    raise InputError(source, "payload.kind", f"{kind.value!r} is ttlaunch's own kind: expected {expected}")
