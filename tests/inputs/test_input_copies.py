"""The copies of a run's files its jobs run from (ttlaunch.inputs.input_copies)."""

import os
from pathlib import Path

import pytest

from ttlaunch.base.errors import InputError
from ttlaunch.inputs.input_copies import copies_of, copy_of, freeze, freeze_task, task_copy

pytestmark = pytest.mark.unit


def _experiment(root: Path) -> dict[str, Path]:
    (root / "scripts").mkdir(parents=True)
    train = root / "scripts" / "train.sh"
    train.write_text("#!/bin/sh\n. ./helpers.sh\n")
    train.chmod(0o755)
    (root / "scripts" / "helpers.sh").write_text("step() { :; }\n")
    (root / "run.yaml").write_text("lr: 1e-3\n")
    return {"scripts/train.sh": train, "run.yaml": root / "run.yaml"}


def test_the_copies_keep_a_scripts_mode_and_what_lay_beside_it(tmp_path: Path):
    files = _experiment(tmp_path / "exp")
    job_dir = tmp_path / "sweep" / "run"
    freeze(job_dir, files, run=frozenset({"scripts/train.sh"}))
    copies = copies_of(job_dir)
    assert copies == job_dir / "inputs"
    train = copies / "scripts" / "train.sh"
    assert train.read_text() == files["scripts/train.sh"].read_text() and os.access(train, os.X_OK)
    helpers = copies / "scripts" / "helpers.sh"
    assert helpers.is_symlink() and helpers.resolve() == (tmp_path / "exp" / "scripts" / "helpers.sh")
    assert not (copies / "run.yaml").is_symlink()
    assert copy_of(tmp_path / "exp" / "run.yaml", tmp_path / "exp", copies) == copies / "run.yaml"
    assert copy_of(tmp_path / "elsewhere.yaml", tmp_path / "exp", copies) == tmp_path / "elsewhere.yaml"
    assert copy_of(tmp_path / "exp" / "run.yaml", tmp_path / "exp", None) == tmp_path / "exp" / "run.yaml"
    assert copies_of(tmp_path / "sweep" / "other") is None


def test_a_resubmission_replaces_the_copies_and_a_vanished_file_is_one_clear_error(tmp_path: Path):
    files = _experiment(tmp_path / "exp")
    job_dir = tmp_path / "sweep" / "run"
    freeze(job_dir, files)
    files["run.yaml"].write_text("lr: 5e-3\n")
    freeze(job_dir, {"run.yaml": files["run.yaml"]})
    assert (job_dir / "inputs" / "run.yaml").read_text() == "lr: 5e-3\n"
    assert not (job_dir / "inputs" / "scripts").exists()
    files["run.yaml"].unlink()
    with pytest.raises(InputError) as raised:
        freeze(job_dir, {"run.yaml": files["run.yaml"]})
    assert str(files["run.yaml"]) in str(raised.value) and "vanished before submission" in str(raised.value)
    assert (job_dir / "inputs" / "run.yaml").read_text() == "lr: 5e-3\n", "the last submission's copies stand"


def test_a_sweep_copies_a_task_file_once_and_says_when_it_was_edited_since(tmp_path: Path):
    script = tmp_path / "tasks" / "words.py"
    script.parent.mkdir()
    script.write_text("TASK = 1\n")
    (tmp_path / "tasks" / "data.jsonl").write_text("{}\n")
    sweep = tmp_path / "sweep"
    assert freeze_task(sweep, "words", script) is None
    copy = task_copy(sweep, "words", script)
    assert copy.read_text() == "TASK = 1\n" and (copy.parent / "data.jsonl").is_symlink()
    assert freeze_task(sweep, "words", script) is None
    script.write_text("TASK = 2\n")
    note = freeze_task(sweep, "words", script)
    assert note is not None and str(script) in note and "changed since this sweep copied it" in note
    assert copy.read_text() == "TASK = 1\n"


def test_a_command_job_runs_the_copy_of_its_script_and_writes_where_it_was_told(compose_config, tmp_path: Path):
    from dataclasses import replace

    from ttlaunch.inputs.launch_inputs import read_inputs

    experiment = tmp_path / "words"
    experiment.mkdir()
    (experiment / "experiment_summary.yaml").write_text(
        "experiment: {name: words}\nruns: [{name: r, type: fine-tuned, parameters: {lr: 0.1}}]\n"
    )
    script = experiment / "train.sh"
    script.write_text("echo lr=$2 > $3\n")
    out = experiment / "trained.txt"  # named in the argv, but written by the job: not an input
    cfg = compose_config(
        f"hydra.searchpath=[ttlaunch-experiments://{tmp_path}]", "experiment=words", "payload=command",
        f'payload.command=[sh,"{script}","{{lr}}","{out}"]',
    )
    inputs, job_dir = read_inputs(cfg, cfg.hydra), tmp_path / "sweep" / "r"
    submitted = inputs.payload_for("r", job_dir)
    assert inputs.input_paths("r", submitted) == {"train.sh": script}
    assert inputs.run_files("r", submitted) == frozenset({"train.sh"})
    freeze(job_dir, inputs.input_paths("r", submitted), inputs.run_files("r", submitted))
    in_job = replace(inputs, copies=copies_of(job_dir)).payload_for("r", job_dir)
    assert in_job.argv == ("sh", str(job_dir / "inputs" / "train.sh"), "0.1", str(out))
