"""`python -m ttlaunch.monitor.wandb_scores '<json>'`: one evaluation's scores added to its
run's W&B run, as summary values (`eval/<task>/epoch_<N>/<metric>`), in an offline run of
the same id in the training job's W&B dir, which the next sync uploads
(ttlaunch.monitor.tracker_sync). A process of its own: wandb loads there, not in the monitor.

The JSON: {"dir", "project", "entity", "id", "values": {key: number}}.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    order = json.loads(argv[0])
    import wandb  # only in this process: the user's wandb, as their trainer logged with it

    run = wandb.init(
        project=order["project"], entity=order["entity"], id=order["id"], resume="allow", mode="offline", dir=order["dir"],
    )
    for key, value in order["values"].items():
        run.summary[key] = value
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
