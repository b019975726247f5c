"""A Hydra app that is not ttlaunch's: a user's training script, as it would be with
hydra-submitit-launcher. Each attempt appends what its environment said to attempts.jsonl
in its output dir (with `wandb=true`, the id of the W&B run a plain `wandb.init()` gave it);
`checkpoint` (called by ttlaunch before a requeue) writes checkpoint.txt."""

import json
import os
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig


class Train:
    def __call__(self, cfg):
        self.output_dir = Path(HydraConfig.get().runtime.output_dir)
        attempt = {name: os.environ.get(f"TTLAUNCH_{name.upper()}") for name in ("attempt", "resume")}
        if cfg.wandb:
            import wandb

            run = wandb.init(project="ttlaunch_tests")  # nothing of ttlaunch's: its environment says the rest
            run.log({"attempt": int(attempt["attempt"])})
            attempt["wandb_id"] = run.id
        with (self.output_dir / "attempts.jsonl").open("a") as stream:
            stream.write(json.dumps({"lr": cfg.lr, "seed": cfg.seed, **attempt}) + "\n")
        if cfg.fail:
            raise ValueError(f"diverged at lr={cfg.lr}")
        if attempt["resume"] != "1":
            (self.output_dir / "started").touch()
            time.sleep(cfg.sleep_s)
        return cfg.lr * 10

    def checkpoint(self):
        (self.output_dir / "checkpoint.txt").write_text("saved\n")


train = Train()

if __name__ == "__main__":
    hydra.main(version_base="1.3", config_path=".", config_name="train_app")(train)()
