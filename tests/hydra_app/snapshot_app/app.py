"""A Hydra app whose task imports a module of its own (by reference, as cloudpickle ships
it): what a code snapshot must freeze. Each job writes what it imported to ran.json."""

import json
import time
from pathlib import Path

import helper
import hydra
from hydra.core.hydra_config import HydraConfig


@hydra.main(version_base="1.3", config_path=".", config_name="app")
def main(cfg):
    time.sleep(cfg.sleep_s)
    ran = {"version": helper.VERSION, "helper": helper.__file__, "seed": cfg.seed}
    (Path(HydraConfig.get().runtime.output_dir) / "ran.json").write_text(json.dumps(ran))
    return helper.VERSION


if __name__ == "__main__":
    main()
