"""torchtune's LoRA recipes on the CPU, saving checkpoints without changing the model they train.

Every torchtune release to 0.6.1 (the last) saves a LoRA run's merged weights with
`get_merged_lora_ckpt({k: v.cpu() for k, v in model.state_dict().items()}, rank, alpha)`,
which adds each adapter's (alpha/rank)·B·A to its base weight in place. On a GPU, `.cpu()`
copies; on the CPU it returns the model's own tensor, so each save adds the adapter into the
frozen base weights of the model being trained while the adapter stays on: from the next step
the model applies it twice (the loss jumps at every epoch's start), and each later checkpoint
carries every earlier save's adapter too. cruijff_kit's custom recipes call the same function.

A job that runs torchtune without GPUs starts its trainer with this directory first on
PYTHONPATH (`with_merge_on_copies`). Python then runs `sitecustomize.py` from here at
start-up, which makes torchtune's merge add into copies of the weights it changes, once
torchtune is imported and its version checked; nothing of torchtune's or of a scaffold's is
edited. The directory holds nothing else a trainer could import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from ttlaunch.base import environment

HOOK_DIR = Path(__file__).resolve().parent


def with_merge_on_copies(env: Mapping[str, str], inherited: Mapping[str, str] = os.environ) -> dict[str, str]:
    """`env` (a payload's, over the `inherited` environment) with HOOK_DIR first on PYTHONPATH,
    before whatever the payload or the job's own environment puts there."""
    existing = env.get(environment.PYTHONPATH, inherited.get(environment.PYTHONPATH, ""))
    return {**env, environment.PYTHONPATH: os.pathsep.join(part for part in (str(HOOK_DIR), existing) if part)}
