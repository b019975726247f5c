"""Build the HuggingFace datasets cache of a torchtune config's dataset, as its recipe would.

    python -m ttlaunch.job.dataset_cache --config <config file> key=value ...

The arguments are those a `tune run <recipe>` command gives its recipe. The tokenizer and
each dataset are instantiated by torchtune from the merged config, as the recipe's own
setup does, so `load_dataset` is called with the same arguments and fills the same cache.
Runs in a job with the payload's environment (its HF_HOME), once per sweep and dataset
(ttlaunch.job.preparation); the cache dir it filled is written, as a JSON list, to the file
named by TTLAUNCH_PREPARED_REPORT.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import datasets
from omegaconf import DictConfig, ListConfig
from torchtune import config

from ttlaunch.base import environment


@config.parse
def main(cfg: DictConfig) -> None:
    tokenizer = config.instantiate(cfg.tokenizer)
    parts = list(cfg.dataset) if isinstance(cfg.dataset, ListConfig) else [cfg.dataset]
    for part in parts:
        if part.get("packed"):
            # Packing happens in memory at every start; the cache is what is shared.
            part.packed = False
        config.instantiate(part, tokenizer)
    report = os.environ.get(environment.PREPARED_REPORT)
    if report:
        Path(report).write_text(json.dumps([str(datasets.config.HF_DATASETS_CACHE)]), encoding="utf-8")


if __name__ == "__main__":
    main()
