from pathlib import Path

from ttlaunch.records.checkpoints import epoch_dirs
from ttlaunch.records.jobs_file import JobRecord, SweepState
from ttlaunch.records.sweep_summary import check_checkpoint, render_summary


def make_epoch(output: Path, epoch: int, *files: str) -> None:
    directory = output / f"epoch_{epoch}"
    directory.mkdir(parents=True)
    for name in files:
        (directory / name).parent.mkdir(exist_ok=True)
        (directory / name).write_text("x")


def test_the_newest_epoch_must_hold_adapter_weights_and_config(tmp_path: Path):
    make_epoch(tmp_path, 0, "adapter_model.pt", "adapter_config.json")
    make_epoch(tmp_path, 10, "adapter_model.safetensors", "adapter_config.json")
    check = check_checkpoint(tmp_path)
    assert check.ok and check.checkpoint == tmp_path / "epoch_10"  # 10 after 0, not after 1 as text
    make_epoch(tmp_path, 2)
    assert [p.name for p in epoch_dirs(tmp_path)] == ["epoch_0", "epoch_2", "epoch_10"]

    broken = tmp_path / "broken"
    make_epoch(broken, 1, "adapter_config.json")
    check = check_checkpoint(broken)
    assert not check.ok and "lacks adapter weights" in check.problem
    assert not check_checkpoint(tmp_path / "nothing").ok
    # Merged weights, the adapter moved aside by cruijff_kit's post step: complete.
    merged = tmp_path / "merged"
    make_epoch(merged, 0, "model-00001-of-00001.safetensors", "config.json", "adapter_weights/adapter_model.pt",
               "adapter_weights/adapter_config.json")
    assert check_checkpoint(merged).ok


def test_summary_lists_completed_and_failed_runs_flags_and_next_steps(tmp_path: Path):
    make_epoch(tmp_path / "a", 1, "adapter_model.pt", "adapter_config.json")
    state = SweepState(
        experiment="cap",
        sweep_dir=str(tmp_path),
        jobs={
            "a": JobRecord(name="a", job_id="11", status="COMPLETED", elapsed="8m 2s", output_dir=str(tmp_path / "a"),
                           stdout="a.out", stderr="a.err"),
            "b": JobRecord(name="b", job_id="12", status="COMPLETED", elapsed="1m 0s", output_dir=str(tmp_path / "b")),
            "c": JobRecord(name="c", job_id="13", status="FAILED", stdout="c.out", stderr=str(tmp_path / "c.err")),
            "d": JobRecord(name="d", status="SUBMIT_FAILED", error="invalid partition specified"),
            "e": JobRecord(name="e", job_id="14", status="CANCELLED", stderr=str(tmp_path / "never.err")),
        },
    )
    checks = {name: check_checkpoint(tmp_path / name) for name in ("a", "b")}
    (tmp_path / "c.err").write_text("Traceback ...\n")
    text = render_summary(state, checks, tmp_path / "run-torchtune.log")
    assert "2 of 5 jobs completed." in text
    assert "  - a (Job 11) - 8m 2s" in text
    assert f"  - c (Job 13) - FAILED - log: `{tmp_path / 'c.err'}`" in text
    assert "  - d (Job none) - SUBMIT_FAILED: invalid partition specified" in text
    assert f"- a: `{tmp_path / 'a' / 'epoch_1'}/`" in text
    assert "- b: ⚠ no epoch_N/ checkpoint" in text
    assert "Completed without a usable checkpoint: b" in text
    # Only logs that exist are offered; the runs that never started say why.
    assert f"- Look at the failed runs' logs: `grep -i error` `{tmp_path / 'c.err'}`\n" in text
    assert "- d never started (SUBMIT_FAILED): its submission failed: invalid partition specified. Once that is fixed" in text
    assert "- e never started (CANCELLED): it ended before it ran, and left no log" in text


def test_next_steps_name_the_experiments_plan_only_when_it_has_one(tmp_path: Path):
    state = SweepState(experiment="x", sweep_dir=str(tmp_path))
    state.jobs["r"] = JobRecord(name="r", job_id="1", status="COMPLETED")
    assert "experiment_summary.md" not in render_summary(state, {}, tmp_path / "log")
    state.status_table = str(tmp_path / "experiment_summary.md")
    assert "experiment_summary.md" not in render_summary(state, {}, tmp_path / "log"), "cruijff_kit's layout has none"
    (tmp_path / "experiment_summary.md").write_text("# plan\n")
    assert f"the experiment's own plan (`{tmp_path / 'experiment_summary.md'}`)" in render_summary(state, {}, tmp_path / "log")
