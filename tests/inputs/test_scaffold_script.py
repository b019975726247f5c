"""A scaffold's batch script (cruijff_kit's finetune.slurm shape, this project's own text):
its recipe, its steps around training and its #SBATCH resources, and how they reach a job."""

import subprocess
from pathlib import Path

import pytest

from ttlaunch.base.errors import InputError
from ttlaunch.inputs.scaffold_script import parse_script

SCRIPT = """#!/bin/bash
#SBATCH --job-name=words_rank4 # Job name
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=2
#SBATCH --mem=40G # Memory
#SBATCH --time=1:30:00
#SBATCH --mail-type=begin
#SBATCH --mail-type=end
#SBATCH --mail-user=me@example.edu
#SBATCH --gres=gpu:a100:1
#SBATCH --output={out}/slurm-%j.out
#SBATCH -p gpu-short
##SBATCH --account=<ACT>

module purge
echo before > {out}/before.txt

tune run my_pkg.recipes.lora_single_device.__main__ \\
    --config finetune.yaml seed=3
TUNE_EXIT_CODE=$?

if [ $TUNE_EXIT_CODE -eq 0 ]; then
    echo "after $TUNE_EXIT_CODE" > {out}/after.txt
fi

exit $TUNE_EXIT_CODE
"""


def test_sbatch_lines_become_compute_fields_and_sbatch_options(tmp_path: Path):
    script = parse_script(SCRIPT.format(out=tmp_path), tmp_path / "finetune.slurm")
    assert script.compute == {
        "nodes": 1, "cpus_per_task": 2, "mem_gb": 40.0, "timeout_min": 90, "gpus_per_node": 1, "gpu_type": "a100",
        "partition": "gpu-short",
    }
    assert script.additional == {"mail_type": "begin,end", "mail_user": "me@example.edu"}
    assert script.output == f"{tmp_path}/slurm-%j.out"
    assert (script.recipe, script.overrides) == ("my_pkg.recipes.lora_single_device.__main__", ("seed=3",))


@pytest.mark.cli
@pytest.mark.parametrize("trainer_exit", [0, 3])
def test_the_wrapper_runs_the_scripts_own_steps_around_ttlaunchs_command(tmp_path: Path, trainer_exit: int):
    script = parse_script(SCRIPT.format(out=tmp_path), tmp_path / "finetune.slurm")
    trainer = ["sh", "-c", f"echo trained with \"$*\"; exit {trainer_exit}", "trainer", "lr=1"]
    done = subprocess.run(
        ["bash", "-c", script.wrapper("words_rank4"), "finetune.slurm", *trainer],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "SLURM_JOB_ID": "77"}, cwd=tmp_path,
    )
    assert done.returncode == trainer_exit  # the script's own `exit $TUNE_EXIT_CODE`
    assert (tmp_path / "before.txt").read_text() == "before\n"
    # The step after training sees the training's exit status, as the script expects.
    assert (tmp_path / "after.txt").exists() == (trainer_exit == 0)
    assert "trained with lr=1" in done.stdout
    assert "trained with lr=1" in (tmp_path / "slurm-77.out").read_text()  # --output gets a copy


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("#!/bin/bash\n#SBATCH --time=soon\ntune run r --config c\n", "line 2: --time", "not a value sbatch takes"),
        ("#!/bin/bash\n#SBATCH --mem=80G\npython train.py\n", "tune run", "no `tune run"),
    ],
)
def test_a_script_ttlaunch_cannot_read_is_named_with_its_line(tmp_path: Path, text, field, words):
    with pytest.raises(InputError) as caught:
        parse_script(text, tmp_path / "finetune.slurm")
    assert (caught.value.source, caught.value.field) == (str(tmp_path / "finetune.slurm"), field)
    assert words in caught.value.message


def scaffolded(tmp_path: Path) -> Path:
    """An experiments dir with one scaffolded experiment `words` of one run, rank4."""
    run_dir = tmp_path / "words" / "rank4"
    run_dir.mkdir(parents=True)
    (run_dir / "finetune.yaml").write_text(f"output_dir: {run_dir}/artifacts/\nepochs: 1\n")
    (run_dir / "finetune.slurm").write_text(SCRIPT.format(out=run_dir / "artifacts"))
    (tmp_path / "words" / "experiment_summary.yaml").write_text(
        "experiment: {name: words}\n"
        "runs: [{name: rank4, type: fine-tuned, parameters: {lora_rank: 4}, compute: {time: '2:00:00'}}]\n"
    )
    return run_dir


def test_the_script_decides_resources_over_the_preset_and_under_the_run_and_the_command_line(compose_config, tmp_path):
    from ttlaunch.inputs.launch_inputs import read_inputs

    scaffolded(tmp_path)
    cfg = compose_config(
        f"hydra.searchpath=[ttlaunch-experiments://{tmp_path}]", "experiment=words", "compute=testcluster/cpu_1x",
        "compute.mem_gb=2", "compute.gpus_per_node=0",
    )
    compute = read_inputs(cfg, cfg.hydra).compute_for("rank4")
    assert compute.mem_gb == 2 and compute.gpus_per_node == 0  # the command line's
    assert compute.timeout_min == 120  # the run's compute in the summary, over the script's 1:30:00
    assert (compute.cpus_per_task, compute.partition) == (2, "gpu-short")  # the script's, over the preset's
    assert compute.additional_parameters["mail_type"] == "begin,end"


def test_a_scaffolded_run_trains_with_its_scripts_recipe_inside_its_script(compose_config, tmp_path):
    from ttlaunch.inputs.launch_inputs import read_inputs

    run_dir = scaffolded(tmp_path)
    cfg = compose_config(f"hydra.searchpath=[ttlaunch-experiments://{tmp_path}]", "experiment=words")
    inputs = read_inputs(cfg, cfg.hydra)
    assert inputs.compute_for("rank4").timeout_min == 120  # locally the #SBATCH lines ask nothing of anyone
    assert inputs.compute_for("rank4").partition is None
    command = inputs.payload_for("rank4", tmp_path / "sweep" / "rank4")
    assert command.argv[:2] == ("bash", "-c") and command.argv[3] == "finetune.slurm"
    assert "module purge" in command.argv[2] and '\n"$@"\n' in command.argv[2]
    assert command.argv[4:] == (
        "tune", "run", "my_pkg.recipes.lora_single_device.__main__", "--config", str(run_dir / "finetune.yaml"),
        "seed=3", "device=cpu", "dtype=fp32",
    )
    assert (command.cwd, command.runs_script, command.output_dir) == (run_dir, True, run_dir / "artifacts")


def test_a_scaffold_file_edited_after_submission_is_named_by_the_next_launch(compose_config, tmp_path):
    from ttlaunch.inputs.launch_inputs import read_inputs
    from ttlaunch.submit.selection import spec_changes

    run_dir = scaffolded(tmp_path)
    cfg = compose_config(f"hydra.searchpath=[ttlaunch-experiments://{tmp_path}]", "experiment=words")
    submitted = read_inputs(cfg, cfg.hydra).submission_spec("rank4", tmp_path / "sweep" / "rank4")
    assert sorted(submitted["files"]) == ["rank4/finetune.slurm", "rank4/finetune.yaml"]
    (run_dir / "finetune.yaml").write_text(f"output_dir: {run_dir}/artifacts/\nepochs: 1\nlr: 5e-3\n")
    now = read_inputs(cfg, cfg.hydra).submission_spec("rank4", tmp_path / "sweep" / "rank4")
    assert spec_changes(submitted, now) == ["rank4/finetune.yaml changed since submission"]
    (run_dir / "finetune.slurm").unlink()
    without_script = read_inputs(cfg, cfg.hydra).submission_spec("rank4", tmp_path / "sweep" / "rank4")
    assert "rank4/finetune.slurm is gone since submission" in spec_changes(submitted, without_script)
    older = {key: value for key, value in submitted.items() if key != "files"}
    assert spec_changes(older, now) == [], "a job recorded before files were kept is compared as before"


def test_a_job_reads_its_scaffold_files_as_they_were_copied_at_submission(compose_config, tmp_path):
    from dataclasses import replace

    from ttlaunch.inputs.input_copies import copies_of, freeze
    from ttlaunch.inputs.launch_inputs import read_inputs

    run_dir = scaffolded(tmp_path)
    cfg = compose_config(
        f"hydra.searchpath=[ttlaunch-experiments://{tmp_path}]", "experiment=words", "compute=testcluster/cpu_1x",
    )
    inputs, job_dir = read_inputs(cfg, cfg.hydra), tmp_path / "sweep" / "rank4"
    submitted = inputs.payload_for("rank4", job_dir)
    freeze(job_dir, inputs.input_paths("rank4", submitted))
    # After submission, the user edits both files: the job does not see it.
    (run_dir / "finetune.yaml").write_text("output_dir: elsewhere/\nlr: 5e-3\n")
    (run_dir / "finetune.slurm").write_text("#SBATCH --time=5\ntune run other.recipe --config finetune.yaml\n")
    in_job = replace(inputs, copies=copies_of(job_dir))
    command = in_job.payload_for("rank4", job_dir)
    copy = job_dir / "inputs" / "rank4" / "finetune.yaml"
    assert command.argv[4:7] == ("tune", "run", "my_pkg.recipes.lora_single_device.__main__")
    assert command.argv[command.argv.index("--config") + 1] == str(copy)
    assert "lr" not in copy.read_text()
    # Its relative paths are still from the run's dir, where its script runs.
    assert (command.cwd, command.output_dir) == (run_dir, run_dir / "artifacts")
    assert in_job.compute_for("rank4").cpus_per_task == 2 and inputs.compute_for("rank4").timeout_min == 120
    assert in_job.compute_for("rank4").partition == "gpu-short"  # the copied script's, not the edit's
