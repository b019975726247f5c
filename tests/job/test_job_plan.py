"""job_plan.json: what a training job runs, saved by its launch and read back by the job."""

from pathlib import Path

import pytest

from ttlaunch.base.errors import DamagedFile
from ttlaunch.inputs.payload_command import PayloadCommand
from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.job.job_plan import PLAN_NAME, JobPlan, load_plan, save_plan

PLAN = JobPlan(
    "r8", PayloadKind.torchtune,
    PayloadCommand(
        argv=("bash", "/exp/r8/finetune.slurm"), env={"TTLAUNCH_RUN_NAME": "r8"}, output_dir=Path("/sweep/r8/outputs"),
        setup=(("cp", "-r", "a", "b"),), prepare=(("python", "-m", "x"),), cwd=Path("/exp/r8"),
    ),
    torchrun=True, gpus=4, experiment="cap_4L", parameters={"lora_rank": 8, "lr": 1e-05},
)


def test_a_saved_plan_reads_back_as_it_was_and_a_submission_without_one_removes_the_earlier(tmp_path: Path):
    save_plan(tmp_path / "r8", PLAN)
    assert load_plan(tmp_path / "r8") == PLAN
    save_plan(tmp_path / "r8", None)  # a rule's restart of the same job: it works its own plan out
    assert load_plan(tmp_path / "r8") is None and not (tmp_path / "r8" / PLAN_NAME).exists()


def test_a_damaged_plan_is_named_with_how_to_go_on(tmp_path: Path):
    save_plan(tmp_path, PLAN)
    (tmp_path / PLAN_NAME).write_text('{"run_name": "r8"}')
    with pytest.raises(DamagedFile, match=f"{tmp_path / PLAN_NAME}: not a job plan .*submit the job again"):
        load_plan(tmp_path)
