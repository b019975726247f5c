"""A real cruijff_kit experiment, scaffolded by cruijff_kit's own setup_finetune.py (with only
a tiny model and the CPU substituted), launched in place on the local default: it trains with
the scaffold's own recipe and post-training step, shows its losses, and its runs and its
control are evaluated with cruijff_kit's own capitalization task as cruijff_kit's
setup_inspect.py would run it."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from ttlaunch.job.job_plan import load_plan
from ttlaunch.records.tracker_file import read_tracker, wandb_run_dirs

import cruijff_scaffold
from support import (
    TEST_CONFIGS,
    accounted_end,
    cli_invocation,
    commit_all,
    full_cluster,
    merge_errors,
    plan_from_saved_config,
    queued,
    wait_for,
)
from wandb_history import one_history, read_run

pytest.importorskip("torchtune")
pytest.importorskip("peft")
pytest.importorskip("wandb")
pytestmark = [
    pytest.mark.torchtune,
    pytest.mark.skipif(not cruijff_scaffold.available(), reason=f"cruijff_kit is not at {cruijff_scaffold.UPSTREAM}"),
]

RUNS = {"rank2": 2, "rank4": 4}
TASKS = {"capitalization": 2, "capitalization_more": 3}  # each task's samples: the test split of its dataset


def model_loads(log_dir: Path) -> set[str]:
    """The inspect runs whose logs are in `log_dir`: one model load each (its tasks share it)."""
    from inspect_ai.log import list_eval_logs, read_eval_log

    return {read_eval_log(info, header_only=True).eval.run_id for info in list_eval_logs(str(log_dir))}


def test_a_cruijff_scaffold_trains_and_evaluates_as_its_own_tools_would(run_cli, tmp_path: Path, monkeypatch):
    experiment = cruijff_scaffold.scaffold(tmp_path / "scratch", RUNS, epochs=3, merged=True, two_tasks=True)
    cruijff_scaffold.use_cruijff_kit(monkeypatch, tmp_path / "scratch")
    result = run_cli(
        f"hydra.searchpath=[ttlaunch-experiments://{experiment.parent}]", f"experiment={experiment.name}", timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / experiment.name
    state = json.loads((sweep / "jobs.json").read_text())
    for name in RUNS:
        run = f"{cruijff_scaffold.MODEL_DIR}_{name}"
        job = state["jobs"][run]
        assert job["status"] == "COMPLETED"
        stdout = Path(job["stdout"]).read_text()
        # The scaffold's own recipe, inside its own script, in its own dir.
        assert "tune run cruijff_kit.tools.torchtune.custom_recipes.lora_finetune_single_device_nightly.__main__" in stdout
        artifacts = experiment / run / "artifacts"
        # Its post step ran after the training: with merged weights saved, it moves each epoch's
        # adapter aside (adapter_weights/) so the merged weights load as they are.
        for epoch in range(3):
            assert (artifacts / f"epoch_{epoch}" / "adapter_weights" / "adapter_config.json").is_file()
            assert not (artifacts / f"epoch_{epoch}" / "adapter_config.json").exists()
        assert list(artifacts.glob("slurm-*.out")), "the job's log also where --output says"
        # It ran what its launch worked out from the copies its submission took: what it would have worked out.
        plan = load_plan(sweep / run)
        assert plan is not None and str(sweep / run / "inputs" / run / "finetune.yaml") in plan.command.argv
        assert plan == plan_from_saved_config(sweep / run)
        # Losses from torchtune's progress bar (the scaffold logs to WandB, offline).
        assert job["training"]["loss"] is not None and job["training"]["steps_done"] == 3 * 2
        # Its recipe saved each epoch without changing the model it trained: each epoch's merged
        # weights are the base model's plus that epoch's adapter (ttlaunch.job.trainer_hooks).
        assert Path(job["stderr"]).read_text().count("merges LoRA into copies of the base weights") == 1
        base = tmp_path / "scratch" / "pretrained-llms" / cruijff_scaffold.MODEL_DIR
        for epoch in range(3):
            errors = merge_errors(artifacts / f"epoch_{epoch}", base)
            assert len(errors) == 4 and max(errors.values()) < 1e-5, f"{run} epoch {epoch}: {errors}"
        # Its last epoch evaluated, although the post step moved the file saying it is whole aside:
        # both tasks in one job, one `inspect eval`, one model load, each task on its own dataset.
        evaluation = state["jobs"][f"{run}/epoch2"]
        assert evaluation["status"] == "COMPLETED", evaluation.get("error")
        assert evaluation["tasks"] == list(TASKS)
        for task, samples in TASKS.items():
            assert evaluation["scores"][task]["samples"] == samples and "match/accuracy" in evaluation["scores"][task]["metrics"]
            eval_config = yaml.safe_load((Path(evaluation["output_dir"]).parent / task / "eval.yaml").read_text())
            assert (eval_config["task_name"], eval_config["prompt"], eval_config["vis_label"]) == (task, "Capitalize: {input}\n", name)
        assert Path(evaluation["stdout"]).read_text().count("Running 2 tasks") == 1
        assert len(model_loads(Path(evaluation["output_dir"]))) == 1, "both tasks' logs are of one inspect run"
    # The control, on the base model as it is: the comparison the fine-tuned runs are measured against.
    control = state["jobs"][f"{cruijff_scaffold.MODEL_DIR}_base/model"]
    assert control["status"] == "COMPLETED", control.get("error")
    assert {task: scores["samples"] for task, scores in control["scores"].items()} == TASKS
    assert sorted(name for name, job in state["jobs"].items() if job["kind"] == "evaluation") == sorted(
        [*(f"{cruijff_scaffold.MODEL_DIR}_{name}/epoch2" for name in RUNS), f"{cruijff_scaffold.MODEL_DIR}_base/model"]
    ), "one evaluation job per checkpoint"
    summary = (sweep / "summary.md").read_text()
    assert "| Final loss |" in summary and "capitalization (match/accuracy)" in summary
    assert "capitalization_more (match/accuracy)" in summary and (sweep / "scores_capitalization_more.png").is_file()
    assert f"| {cruijff_scaffold.MODEL_DIR}_base | - | COMPLETED |" in summary and "0 (as given)" in summary
    log = (experiment / "logs" / "run-torchtune.log").read_text()  # where cruijff_kit keeps it
    assert "Not used: experiment.project, experiment.question" in log and "output.wandb_project" in log
    assert "ALL_COMPLETE" in log and "FLAGGED" not in log, "every run's last epoch is complete, its adapter aside"
    assert not os.path.exists(experiment / "experiment_summary.md") and "experiment_summary.md" not in summary


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_on_slurm_the_scaffolds_sbatch_lines_ask_for_the_job_a_queued_job_trains_as_submitted_and_its_monitor_job_ends_it(
    run_cli, tmp_path: Path, monkeypatch
):
    experiment = cruijff_scaffold.scaffold(tmp_path / "scratch", {"rank2": 2})
    cruijff_scaffold.use_cruijff_kit(monkeypatch, tmp_path / "scratch")
    commit = commit_all(experiment)
    run = f"{cruijff_scaffold.MODEL_DIR}_rank2"
    # The device substitution for a CPU cluster: no GPU, and less than the scaffold's 80G.
    args = (
        f"hydra.searchpath=[ttlaunch-experiments://{experiment.parent}]", f"experiment={experiment.name}",
        "compute=testcluster/cpu_1x", "compute.gpus_per_node=0", "compute.mem_gb=3",
        "hydra.callbacks.monitor.poll_interval_s=1",
    )
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / experiment.name
    with full_cluster():  # the run's job waits in the queue while its finetune.yaml is edited
        # Detached: the launch returns once it submitted; its monitor job follows the sweep to its end.
        launched = run_cli(*args, "detach=true", timeout=300)
        assert launched.returncode == 0, launched.stderr[-3000:]
        state = json.loads((sweep / "jobs.json").read_text())
        job_id, monitor_job = state["jobs"][run]["job_id"], state["monitor_job_id"]
        assert queued(job_id) == ("PENDING", 0), "the run's job waits behind the blocker"
        config = experiment / run / "finetune.yaml"
        submitted = yaml.safe_load(config.read_text())["optimizer"]["lr"]
        config.write_text(config.read_text().replace(f"lr: {submitted}", "lr: 0.005"))
    wait_for(lambda: queued(monitor_job) is None, 600, "the monitor job to end the sweep")
    assert accounted_end(monitor_job) == "COMPLETED"
    batch = next((sweep / run / "submitit").glob("*_submission.sh")).read_text()
    # The scaffold's own: its time and mail; the command line's memory; the preset's partition.
    for line in ("#SBATCH --time=59", "#SBATCH --mail-type=begin,end", "#SBATCH --mem=3GB", "#SBATCH --partition=debug"):
        assert line in batch, batch
    assert "gres" not in batch
    jobs = json.loads((sweep / "jobs.json").read_text())["jobs"]
    assert {name: job["status"] for name, job in jobs.items()} == {
        run: "COMPLETED", f"{run}/epoch0": "COMPLETED", f"{cruijff_scaffold.MODEL_DIR}_base/model": "COMPLETED",
    }, {name: job.get("error") for name, job in jobs.items()}
    assert jobs[run]["job_id"] == job_id and jobs[run]["previous_job_ids"] == [] and jobs[run]["attempt"] == 1
    slurm_log = next((experiment / run / "artifacts").glob("slurm-*.out"))
    assert slurm_log.name == f"slurm-{job_id}.out", "--output's %j is the job id"
    # It trained with the lr it was submitted with, read from the copy its submission took.
    trained = Path(jobs[run]["stdout"]).read_text()
    copy = sweep / run / "inputs" / run / "finetune.yaml"
    assert f"--config {copy}" in trained
    assert yaml.safe_load(copy.read_text())["optimizer"]["lr"] == submitted != 0.005
    resolved = Path(jobs[run]["stderr"]).read_text()  # torchtune logs the config it resolved
    assert f"  lr: {submitted}\n" in resolved and "lr: 0.005" not in resolved
    # Its evaluations, submitted by the monitor job, ran the sweep's copy of the task file.
    evaluation_log = Path(jobs[f"{run}/epoch0"]["stdout"]).read_text()
    assert f"inspect eval {sweep}/evaluation_tasks/capitalization/inspect_task.py@capitalization" in evaluation_log
    for name in (f"{run}/epoch0", f"{cruijff_scaffold.MODEL_DIR}_base/model"):
        assert jobs[name]["scores"]["capitalization"]["samples"] == 2, jobs[name]
    assert list(sweep.glob("*.png")), "the pictures"
    # The next launch names the edited file and refuses, as for a changed parameter.
    again = run_cli(*args, timeout=300)
    assert again.returncode != 0
    assert f"{run} ({run}/finetune.yaml changed since submission)" in again.stderr, again.stderr[-2000:]
    assert "resubmit_changed=true" in again.stderr
    # What ran: the experiment's commit and the versions, in the sweep's provenance.
    launches = json.loads((sweep / "provenance.json").read_text())["launches"]
    assert len(launches) == 1  # the refused launch wrote nothing
    assert launches[0]["git"]["experiment"]["commit"] == commit
    assert launches[0]["libraries"]["torchtune"] == "0.6.1"
    assert (sweep / "provenance" / "packages-1.txt").read_text().count("==") > 20
    assert f"at {commit[:12]}" in (sweep / "summary.md").read_text()


def _tracker(job_dir: Path) -> dict:
    try:
        return json.loads((job_dir / "tracker.json").read_text())
    except (OSError, ValueError):
        return {}


def _logged(job_dir: Path, attempts: int, step: int) -> bool:
    """The run's `attempts`-th W&B run has logged `step` or later."""
    wandb = _tracker(job_dir).get("wandb", {})
    return len(wandb.get("dirs", [])) >= attempts and wandb.get("last_step", 0) >= step


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_on_slurm_a_scaffolds_wandb_run_stays_one_run_through_two_requeues_and_a_rules_restart(tmp_path: Path, monkeypatch):
    """The scaffold logs with torchtune's WandBLogger, offline, as cruijff_kit's template has it."""
    steps_per_epoch = 400  # 1600 rows in batches of 4: each epoch lasts seconds, time to interrupt it
    experiment = cruijff_scaffold.scaffold(tmp_path / "scratch", {"rank2": 2}, epochs=3, train_rows=1600)
    cruijff_scaffold.use_cruijff_kit(monkeypatch, tmp_path / "scratch")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = f"{cruijff_scaffold.MODEL_DIR}_rank2"
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / experiment.name
    job_dir = sweep / run
    command, env = cli_invocation(
        tmp_path, "--config-dir", TEST_CONFIGS, f"hydra.searchpath=[ttlaunch-experiments://{experiment.parent}]",
        f"experiment={experiment.name}", "compute=testcluster/cpu_1x", "compute.gpus_per_node=0", "compute.mem_gb=3",
        "requeue=on", "requeue.grace_s=10", "monitoring=restart_cancelled", "evaluation.enabled=false",
        "hydra.callbacks.monitor.poll_interval_s=1", "hydra.callbacks.monitor.live=off", "tracker.sync=off",
    )
    launch = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job_id = ""
    try:
        # Requeued from outside twice mid-epoch (SLURM's warning, as before a preemption), each
        # attempt resuming from the epoch before; then cancelled, and restarted by the rule.
        for attempt, step in ((1, steps_per_epoch + 60), (2, 2 * steps_per_epoch + 60)):
            wait_for(lambda: _logged(job_dir, attempt, step), 400, f"attempt {attempt} at step {step}")
            job_id = json.loads((sweep / "jobs.json").read_text())["jobs"][run]["job_id"]
            subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
        wait_for(lambda: _logged(job_dir, 3, 2 * steps_per_epoch + 60), 400, "attempt 3 in epoch 2")
        subprocess.run(["scancel", job_id], check=True)
        _, stderr = launch.communicate(timeout=600)
    finally:
        launch.kill()
        subprocess.run(["scancel", job_id or "0"])
    assert launch.returncode == 0, stderr[-3000:]
    job = json.loads((sweep / "jobs.json").read_text())["jobs"][run]
    assert job["status"] == "COMPLETED" and job["previous_job_ids"] == [job_id]
    assert [entry["after"] for entry in job["restarts"]] == ["CANCELLED"], "the rule's restart"
    log = (sweep / "run-torchtune.log").read_text()
    assert log.count("(attempt 1 ended: preempted)") == log.count("(attempt 2 ended: preempted)") == 1, "the requeues, its first job's"

    tracker = read_tracker(job_dir)
    dirs = wandb_run_dirs(job_dir, tracker)
    assert len(dirs) == 4 and all(path.name.endswith(f"-{tracker.id}") for path in dirs), dirs  # each attempt's
    # An attempt killed outright (the cancel) may leave its offline file empty: W&B writes it in 32 KiB blocks.
    runs = [read_run(path) for path in dirs]
    logged = [r for r in runs if r.id]
    assert len(logged) >= 3 and runs[0] in logged and runs[-1] in logged
    assert {(r.id, r.group, r.name, r.job_type) for r in logged} == {(tracker.id, experiment.name, run, "train")}, "one W&B run"
    assert all(r.config["lora_rank"] == 2 for r in logged), "the swept parameter in W&B's config"
    assert [r.rewound_to is not None for r in logged] == [False] + [True] * (len(logged) - 1)
    assert one_history(runs) == list(range(1, 3 * steps_per_epoch + 1)), "one curve: each step once, in order"
