"""Start-up hooks of the torchtune trainers ttlaunch starts: what a job needs of torchtune
that none of torchtune's settings gives, without editing torchtune or a scaffold's recipe.

A trainer starts with this directory first on PYTHONPATH and the hooks it needs named in
TTLAUNCH_TRAINER_HOOKS (`with_hooks`). Python then runs `sitecustomize.py` from here at
start-up, which patches torchtune's modules once they are imported:

* `merge_on_copies` (a trainer without GPUs; ttlaunch_merge_on_copies): every torchtune
  release to 0.6.1 (the last) saves a LoRA run's merged weights with
  `get_merged_lora_ckpt({k: v.cpu() for k, v in model.state_dict().items()}, rank, alpha)`,
  which adds each adapter's (alpha/rank)·B·A to its base weight in place. On a GPU, `.cpu()`
  copies; on the CPU it returns the model's own tensor, so each save adds the adapter into the
  frozen base weights of the model being trained while the adapter stays on: from the next
  step the model applies it twice (the loss jumps at every epoch's start), and each later
  checkpoint carries every earlier save's adapter too. cruijff_kit's custom recipes call the
  same function. The hook makes the merge add into copies of the weights it changes.
* `tracker` (every training job; ttlaunch_tracker): torchtune's W&B and TensorBoard loggers
  keep one run per point of the sweep across attempts (ttlaunch.records.tracker_file), its
  steps monotone: a resumed attempt rewinds the W&B run to where its checkpoint was.

The hooks use the standard library only: they run in whatever Python the trainer runs in (a
scaffold's batch script may activate an environment without ttlaunch). The directory holds
nothing else a trainer could import (its modules' names start with `ttlaunch_`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

from ttlaunch.base import environment

HOOK_DIR = Path(__file__).resolve().parent
MERGE_ON_COPIES = "merge_on_copies"
TRACKER = "tracker"


def with_hooks(env: Mapping[str, str], hooks: Sequence[str], inherited: Mapping[str, str] = os.environ) -> dict[str, str]:
    """`env` (a payload's, over the `inherited` environment) with HOOK_DIR first on PYTHONPATH,
    before whatever the payload or the job's own environment puts there, and `hooks` named;
    `env` as it is without hooks."""
    if not hooks:
        return dict(env)
    existing = env.get(environment.PYTHONPATH, inherited.get(environment.PYTHONPATH, ""))
    return {
        **env, environment.PYTHONPATH: os.pathsep.join(part for part in (str(HOOK_DIR), existing) if part),
        environment.TRAINER_HOOKS: ",".join(hooks),
    }
