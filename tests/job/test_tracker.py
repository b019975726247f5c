"""One tracker run per point: its identity in the job dir (tracker.json), what a training job's
environment tells W&B, and torchtune's W&B logger under the tracker hook across attempts
(real torchtune, real wandb offline: each attempt one offline run dir, read back as
`wandb sync` reads it)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ttlaunch.job.tracker import tracker_env
from ttlaunch.job.trainer_hooks import TRACKER, with_hooks
from ttlaunch.records.tracker_file import keep_tracker, read_tracker, wandb_run_dirs

from wandb_history import one_history, read_run


def test_a_point_keeps_its_id_for_good_and_each_job_dir_gets_its_own(tmp_path: Path):
    first = keep_tracker(tmp_path / "r8", "cap_4L", "r8", {"lora_rank": 8})
    again = keep_tracker(tmp_path / "r8", "cap_4L", "r8", {"lora_rank": 8, "seed": 1})
    assert again.id == first.id and again.parameters == {"lora_rank": 8, "seed": 1}
    other = keep_tracker(tmp_path / "r16", "cap_4L", "r16", {"lora_rank": 16})
    assert other.id != first.id and len(first.id) == 16 and first.id.isalnum()
    # A sweep elsewhere with the same run names: another id.
    assert keep_tracker(tmp_path / "elsewhere" / "r8", "cap_4L", "r8", {}).id != first.id
    assert read_tracker(tmp_path / "r8") == again and read_tracker(tmp_path / "none") is None
    (tmp_path / "r16" / "tracker.json").write_text("not json")
    assert read_tracker(tmp_path / "r16") is None and keep_tracker(tmp_path / "r16", "g", "r16", {}).id != other.id


def test_the_environment_tells_wandb_the_point_unless_the_user_set_it(tmp_path: Path):
    run = keep_tracker(tmp_path, "cap_4L", "r8", {})
    env = tracker_env(run, tmp_path, {"PATH": "/bin"})
    assert env == {
        "TTLAUNCH_TRACKER_ID": run.id, "WANDB_RUN_ID": run.id, "WANDB_RESUME": "allow", "WANDB_RUN_GROUP": "cap_4L",
        "WANDB_NAME": "r8", "WANDB_JOB_TYPE": "train", "WANDB_DIR": str(tmp_path),
    }
    mine = tracker_env(run, tmp_path, {"WANDB_RUN_ID": "mine", "WANDB_RUN_GROUP": "lab", "WANDB_DIR": "/scratch"})
    assert mine == {"TTLAUNCH_TRACKER_ID": run.id, "WANDB_NAME": "r8", "WANDB_JOB_TYPE": "train"}, "theirs, and their resume"


def test_the_runs_wandb_dirs_are_those_the_hook_recorded_and_those_under_the_job_dir_oldest_first(tmp_path: Path):
    run = keep_tracker(tmp_path / "job", "g", "r", {})
    logs = tmp_path / "out" / "logs" / "wandb"
    recorded = logs / f"offline-run-20261207_101500-{run.id}"
    own = tmp_path / "job" / "wandb" / f"offline-run-20261207_091500-{run.id}"
    online = tmp_path / "job" / "wandb" / f"run-20261207_111500-{run.id}"
    for path in (recorded, own, online, tmp_path / "job" / "wandb" / "offline-run-20261207_091500-another"):
        path.mkdir(parents=True)
    data = json.loads((tmp_path / "job" / "tracker.json").read_text())
    data["wandb"] = {"dirs": [str(recorded), str(logs / "gone")], "last_step": 3}
    (tmp_path / "job" / "tracker.json").write_text(json.dumps(data))
    assert wandb_run_dirs(tmp_path / "job", read_tracker(tmp_path / "job")) == [own, recorded, online]


# An attempt of a torchtune recipe as far as its logger sees it: created, given the config,
# then the steps from FIRST to LAST logged as the recipes log them (log_dict with step=), by a
# recipe that resumed after EPOCHS_RUN epochs of 5 steps; as torchtune 0.6.1's recipes do
# without max_steps_per_epoch, it counts its steps from 0 again then.
ATTEMPT = """
import sys
from omegaconf import OmegaConf
from torchtune.training.metric_logging import WandBLogger

class Recipe:
    def __init__(self, epochs_run):
        self.epochs_run, self._steps_per_epoch = epochs_run, 5

    def train(self, first, last, log_dir):
        self._metric_logger = WandBLogger(project="ttlaunch_tests", log_dir=log_dir, mode="offline")
        self._metric_logger.log_config(OmegaConf.create({"optimizer": {"lr": 0.003}, "seed": first}))
        for step in range(first, last + 1):
            self._metric_logger.log_dict({"loss": 1.0 / step, "lr": 0.003}, step=step)
        self._metric_logger.close()

epochs_run, first, last, log_dir = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
Recipe(epochs_run).train(first, last, log_dir)
"""


@pytest.mark.torchtune
@pytest.mark.cli
def test_torchtunes_wandb_logger_keeps_one_run_whose_steps_a_resume_rewinds(tmp_path: Path):
    pytest.importorskip("torchtune")
    pytest.importorskip("wandb")
    job_dir, log_dir = tmp_path / "r8", tmp_path / "r8" / "outputs" / "logs"
    run = keep_tracker(job_dir, "cap_4L", "r8", {"lora_rank": 8, "lr": 0.003})
    script = tmp_path / "attempt.py"
    script.write_text(ATTEMPT)
    base = {key: value for key, value in os.environ.items() if not key.startswith("WANDB_")}
    env = with_hooks({**base, "TTLAUNCH_JOB_DIR": str(job_dir), "WANDB_SILENT": "true", **tracker_env(run, job_dir, base)}, [TRACKER])

    def attempt(epochs_run: int, first: int, last: int) -> str:
        done = subprocess.run(
            [sys.executable, str(script), str(epochs_run), str(first), str(last), str(log_dir)],
            env=env, capture_output=True, text=True, timeout=180,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stderr

    assert "resume=allow" in attempt(0, 1, 10)
    # Resumed from epoch 1's checkpoint (step 5), counting from 0 again: steps 6 to 10 are trained again.
    assert "rewound to step 5: steps from 6 are trained again" in attempt(1, 1, 7)
    assert "resume=allow" in attempt(2, 13, 14)  # its steps counted on (max_steps_per_epoch), nothing redone

    dirs = wandb_run_dirs(job_dir, read_tracker(job_dir))
    assert len(dirs) == 3 and all(path.parent == log_dir / "wandb" for path in dirs)
    runs = [read_run(path) for path in dirs]
    assert {(r.id, r.group, r.name, r.job_type) for r in runs} == {(run.id, "cap_4L", "r8", "train")}
    assert all(r.config["lora_rank"] == 8 and r.config["optimizer"] == {"lr": 0.003} for r in runs)
    assert [r.rewound_to for r in runs] == [None, 5, None]
    assert one_history(runs) == list(range(1, 15)), "one curve, each step once"
    recorded = json.loads((job_dir / "tracker.json").read_text())["wandb"]
    assert recorded["last_step"] == 14 and recorded["project"] == "ttlaunch_tests", "where its evaluations' scores go"


# The same attempt with torchtune's TensorBoard logger (organize_logs defaults to a dir per attempt).
TENSORBOARD_ATTEMPT = """
import sys
from torchtune.training.metric_logging import TensorBoardLogger

first, last, log_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
logger = TensorBoardLogger(log_dir=log_dir)
for step in range(first, last + 1):
    logger.log_dict({"loss": 1.0 / step}, step=step)
logger.close()
"""


@pytest.mark.torchtune
@pytest.mark.cli
def test_torchtunes_tensorboard_logger_writes_one_dir_per_point_and_a_resume_purges_the_redone_steps(tmp_path: Path):
    pytest.importorskip("torchtune")
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.plugin_event_accumulator import (
        EventAccumulator,  # what TensorBoard shows, purges included
    )
    from tensorboard.util.tensor_util import make_ndarray

    job_dir, log_dir = tmp_path / "r8", tmp_path / "r8" / "outputs" / "tb"
    run = keep_tracker(job_dir, "cap_4L", "r8", {})
    script = tmp_path / "attempt.py"
    script.write_text(TENSORBOARD_ATTEMPT)
    env = with_hooks({**os.environ, "TTLAUNCH_JOB_DIR": str(job_dir), **tracker_env(run, job_dir, os.environ)}, [TRACKER])
    for first, last in ((1, 10), (6, 12)):  # the second resumed from the checkpoint at step 5
        done = subprocess.run([sys.executable, str(script), str(first), str(last), str(log_dir)], env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-3000:]
    assert {path.parent for path in log_dir.rglob("events.out.tfevents.*")} == {log_dir}, "one dir: one run in TensorBoard"
    events = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})  # 0: every event, not a sample
    events.Reload()
    losses = events.Tensors("loss")  # torchtune writes new-style scalars: tensors
    assert [event.step for event in losses] == list(range(1, 13)), "each step once"
    assert float(make_ndarray(losses[6].tensor_proto)) == pytest.approx(1 / 7)
