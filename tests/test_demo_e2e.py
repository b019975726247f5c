"""The README's main job: the demo sweep, with real torchtune, on the local executor."""

import json
import re
from pathlib import Path

import pytest

from ttlaunch.job.job_plan import load_plan
from ttlaunch.records.jobs_file import STATE_VERSION

from support import TEST_CONFIGS, cuda_devices, merge_errors, plan_from_saved_config

pytest.importorskip("torchtune")
pytestmark = pytest.mark.torchtune

FINE_TUNED = ["lr1e-3", "lr3e-3", "lr1e-2"]
EVALUATIONS = [f"{run}/epoch3" for run in FINE_TUNED] + ["base/model"]
STEPS = 4 * 82  # 4 epochs of 656 words at batch size 8


def test_demo_sweep_trains_every_fine_tuned_run_and_shows_which_won(run_cli, tmp_path: Path):
    result = run_cli("experiment=demo", "--multirun", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "demo"

    for run in FINE_TUNED:
        job_dir = sweep / run
        for epoch in range(4):
            for name in ("adapter_model.pt", "adapter_config.json", "adapter_model.safetensors"):
                assert (job_dir / "outputs" / f"epoch_{epoch}" / name).is_file(), f"{run}/epoch_{epoch}/{name}"
        for name in ("config.yaml", "overrides.yaml", "hydra.yaml"):
            assert (job_dir / "hydra_configs" / name).is_file()
        assert f"run_name={run}" in (job_dir / "hydra_configs" / "overrides.yaml").read_text()
        assert list((job_dir / "submitit").glob("*_0_log.out")) and list((job_dir / "submitit").glob("*_0_log.err"))
    assert not (sweep / "base" / "outputs").exists(), "the control run is evaluated, never trained"
    assert (sweep / "multirun.yaml").is_file()
    # The HF caches stay inside the sweep dir.
    assert (sweep / "hf_home").is_dir()

    state = json.loads((sweep / "jobs.json").read_text())
    assert state["version"] == STATE_VERSION and state["experiment"] == "demo"
    assert sorted(state["jobs"]) == sorted(FINE_TUNED + EVALUATIONS)
    for run in FINE_TUNED:
        job = state["jobs"][run]
        assert job["status"] == "COMPLETED" and job["job_id"]
        assert [Path(p).name for p in job["checkpoints"]] == [f"epoch_{n}" for n in range(4)]
    # Each run's final epoch and the base model itself, evaluated by real inspect-ai on CPU on
    # words no run trained on, their scores read back from inspect's logs.
    for name in EVALUATIONS:
        job = state["jobs"][name]
        assert (job["kind"], job["status"]) == ("evaluation", "COMPLETED")
        assert job["tasks"] == ["capitalize"]
        assert job["scores"]["capitalize"]["samples"] == 20 and Path(job["scores"]["capitalize"]["log"]).suffix == ".eval"

    # The story: the runs learn, they differ, and the best beats the base model.
    first, final = {}, {}
    for run in FINE_TUNED:
        logged = [line.split() for line in next((sweep / run / "outputs" / "logs").glob("log_*.txt")).read_text().splitlines()]
        losses = [float(dict(pair.split(":") for pair in line[3:])["loss"]) for line in logged]
        first[run], final[run] = losses[0], losses[-1]
        training = state["jobs"][run]["training"]
        assert (training["steps_done"], training["steps_total"]) == (STEPS, STEPS)
        assert training["loss"] == final[run] and training["min_loss"] == min(losses)
        # Saving epoch 1's checkpoint left the model being trained as it was: no jump at the
        # first step of epoch 2 (torchtune 0.6.1 alone on the CPU: 0.65 -> 4.56 at lr 1e-2).
        at_epoch_start, before_it = losses[STEPS // 4], losses[STEPS // 4 - 1]
        assert at_epoch_start <= 1.5 * before_it, f"{run}: {before_it} -> {at_epoch_start} at epoch 2's first step"
        # Each epoch's merged weights are the base model's plus that epoch's adapter, and only it.
        stderr = Path(state["jobs"][run]["stderr"]).read_text()
        assert stderr.count("merges LoRA into copies of the base weights") == 1, "said once in the job's log"
        for epoch in range(4):
            errors = merge_errors(sweep / run / "outputs" / f"epoch_{epoch}", sweep / "demo_assets" / "model")
            assert len(errors) == 5 and max(errors.values()) < 1e-5, f"{run} epoch {epoch}: {errors}"
    best = min(final, key=final.get)
    assert final[best] <= 0.6 * first[best], f"the best run learns: {first} -> {final}"
    ordered = sorted(final.values())
    assert all(later >= 1.05 * earlier for earlier, later in zip(ordered, ordered[1:])), f"the runs differ: {final}"
    accuracy = {name.split("/")[0]: state["jobs"][name]["scores"]["capitalize"]["metrics"]["match/accuracy"] for name in EVALUATIONS}
    assert accuracy["base"] == 0.0, "the base model repeats the word: no capitals"
    assert accuracy[best] >= 0.25 and accuracy[best] == max(accuracy.values()), accuracy

    log = (sweep / "run-torchtune.log").read_text()
    actions = re.findall(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] ([A-Z_]+):", log, flags=re.M)
    assert actions[:2] == ["DISCOVER_EXPERIMENT", "IDENTIFY_RUNS"]
    assert actions.count("SUBMIT_JOB") == 7 and "ALL_SUBMITTED" in actions
    assert actions.count("STATE_CHANGE") >= 3 and actions[-1] == "ALL_COMPLETE"
    assert "Result: Experiment demo has 3 fine-tuning runs" in log
    assert "Summary: 7 jobs finished - 7 COMPLETED, 0 FAILED" in log
    assert log.count("Scores: match/accuracy ") == 4
    # Entries are separated by one blank line.
    assert all(entry.startswith("[") for entry in log.strip().split("\n\n"))
    assert actions.count("VALIDATION") == 3 and "FLAGGED" not in log
    summary = (sweep / "summary.md").read_text()
    assert "All 7 jobs completed." in summary and summary in result.stdout
    for run in FINE_TUNED:
        assert f"- {run}: `{sweep / run / 'outputs' / 'epoch_3'}/`" in summary

    # The results table picks the winner and shows the base model beside it.
    results = summary.split("### Results", 1)[1].split("###", 1)[0]
    header, rows = results.splitlines()[4], results.splitlines()[6:10]
    assert header.startswith("| Run | lr | Status | Final loss |") and header.endswith("| capitalize (match/accuracy) |")
    assert rows[0].startswith(f"| {best} |") and rows[-1].startswith("| base | - | COMPLETED |")
    assert rows[0].endswith(f"| {accuracy[best]:.4g} (epoch 3) |") and rows[-1].endswith("| 0 (as given) |")
    assert "Total compute: " in results and "CPU-hours" in results
    pictures = {
        name: sweep / name for name in ("loss_curves.png", "timeline.png", "loss_by_lr.png", "scores_capitalize.png")
    }
    assert all(f"`{path}`" in summary and f"({name})" in summary for name, path in pictures.items())
    from matplotlib.image import imread

    assert all(imread(path).shape[0] > 100 for path in pictures.values()), "each picture decodes"
    from ttlaunch.monitor.training import training_curves
    from ttlaunch.records.jobs_file import load_state
    from ttlaunch.records.plots import loss_curves_figure, scores_figure
    from ttlaunch.records.results import result_rows

    loaded = load_state(sweep / "jobs.json", "demo", sweep)
    lines = loss_curves_figure(training_curves(loaded)).axes[0].get_lines()
    assert sorted(line.get_label() for line in lines) == sorted(FINE_TUNED)
    assert all(list(line.get_xdata()) == list(range(1, STEPS + 1)) for line in lines), "one point per logged step"
    bars = scores_figure(result_rows(loaded), "capitalize").axes[0]
    assert [label.get_text() for label in bars.get_yticklabels()][0] == f"{best} (epoch 3)"

    # The report again, on demand, in another order.
    import subprocess
    import sys

    report = subprocess.run(
        [sys.executable, "-m", "ttlaunch.report", str(sweep), "--sort-by", "lr"], capture_output=True, text=True,
    )
    assert report.returncode == 0, report.stderr
    assert report.stdout.startswith("Sorted by lr, best first (smallest).")
    assert [line.split(" | ")[0] for line in report.stdout.splitlines() if line.startswith("| lr")] == [
        "| lr1e-3", "| lr3e-3", "| lr1e-2",
    ]
    assert all(f"picture: {path}" in report.stdout for path in pictures.values())
    refused = subprocess.run([sys.executable, "-m", "ttlaunch.report", str(sweep), "--sort-by", "nope"], capture_output=True, text=True)
    assert refused.returncode == 2 and "--sort-by nope: one of final_loss" in refused.stderr

    # Launched again with the run's record lost to a failure: the new job finds the final
    # epoch saved and trains nothing (torchtune would silently redo and overwrite it).
    run = FINE_TUNED[0]
    final = sweep / run / "outputs" / "epoch_3" / "adapter_model.pt"
    saved_at = final.stat().st_mtime_ns
    state["jobs"][run]["status"] = "FAILED"
    (sweep / "jobs.json").write_text(json.dumps(state))
    again = run_cli("experiment=demo", "resubmit_failed=true", timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    job = json.loads((sweep / "jobs.json").read_text())["jobs"][run]
    assert job["status"] == "COMPLETED" and job["previous_job_ids"] == [state["jobs"][run]["job_id"]]
    # Stable names: the same dirs for every submission of a run; log files carry the job id.
    assert (job["job_dir"], job["output_dir"]) == (state["jobs"][run]["job_dir"], state["jobs"][run]["output_dir"])
    assert Path(job["stdout"]).name.startswith(f"{job['job_id']}_")
    assert final.stat().st_mtime_ns == saved_at, "the finished run was trained again"
    assert "nothing to train" in Path(job["stdout"]).read_text()
    assert "1 jobs ready to submit (2 already completed" in (sweep / "run-torchtune.log").read_text()


def test_a_scaffolded_experiment_trains_in_place_from_its_own_run_configs(run_cli, tmp_path: Path):
    from ttlaunch.job.demo_assets import build

    config = build(tmp_path / "assets").read_text()
    experiments = tmp_path / "experiments"
    scaffold = experiments / "cap_2025"
    for rank in (4, 8):
        run_dir = scaffold / f"rank{rank}"
        run_dir.mkdir(parents=True)
        # As a scaffolder writes it: complete, with its own output dir beside it.
        text = config.replace("lora_rank: 8", f"lora_rank: {rank}").replace("epochs: 2", "epochs: 1")
        text = text.replace(f"output_dir: {tmp_path / 'assets'}/unused_output", f"output_dir: {run_dir / 'ck-out'}")
        (run_dir / "finetune.yaml").write_text(text)
    summary = (
        "experiment: {name: cap_2025}\nruns:\n"
        "  - {name: rank4, type: fine-tuned, parameters: {lora_rank: 4}}\n"
        "  - {name: rank8, type: fine-tuned, parameters: {lora_rank: 8}}\n"
        "  - {name: base, type: control, parameters: {}}\n"
    )
    (scaffold / "experiment_summary.yaml").write_text(summary)
    before = sorted(p.relative_to(scaffold) for p in scaffold.rglob("*"))

    result = run_cli(
        f"hydra.searchpath=[ttlaunch-experiments://{experiments}]", "experiment=cap_2025",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for run in ("rank4", "rank8"):
        assert (scaffold / run / "ck-out" / "epoch_0" / "adapter_model.pt").is_file()
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "cap_2025"
    state = json.loads((sweep / "jobs.json").read_text())
    assert state["jobs"]["rank4"]["output_dir"] == str(scaffold / "rank4" / "ck-out")
    assert state["jobs"]["rank4"]["checkpoints"] == [str(scaffold / "rank4" / "ck-out" / "epoch_0")]
    # Nothing the user wrote changed; only the runs' outputs and the event log's copy in the
    # experiment's logs/ (where cruijff_kit keeps it) were added.
    assert (scaffold / "experiment_summary.yaml").read_text() == summary
    after = sorted(p.relative_to(scaffold) for p in scaffold.rglob("*"))
    assert set(before) <= set(after)
    log_copy = {Path("logs"), Path("logs") / "run-torchtune.log"}
    assert all(p.parts[1] == "ck-out" for p in set(after) - set(before) - log_copy if len(p.parts) > 1)
    assert log_copy <= set(after)


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_an_epochs_evaluation_runs_on_the_cluster_while_the_next_epoch_trains(run_cli, tmp_path: Path):
    import subprocess

    from ttlaunch.job.demo_assets import prompts

    dataset = tmp_path / "train.json"  # 600 rows at batch size 1: an epoch of about 10 s
    dataset.write_text(json.dumps([{"instruction": prompt, "input": "", "output": answer} for prompt, answer in prompts(600)]))
    result = run_cli(
        "--config-dir", TEST_CONFIGS, "experiment=evalwhile", "compute=testcluster/cpu_1x",
        "hydra.callbacks.monitor.poll_interval_s=1", f'payload.overrides=["max_steps_per_epoch=null","dataset.data_files={dataset}"]',
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = json.loads((tmp_path / "work" / "ttlaunch_sweeps" / "evalwhile" / "jobs.json").read_text())["jobs"]
    assert sorted(jobs) == ["r8", "r8/epoch0", "r8/epoch1"]
    assert all(job["status"] == "COMPLETED" for job in jobs.values())
    assert all(jobs[f"r8/epoch{n}"]["scores"]["capitalize"]["samples"] == 4 for n in (0, 1))
    for job in jobs.values():
        assert list((Path(job["job_dir"]) / "submitit").glob("*_submission.sh")), "the sbatch script is kept beside the logs"
    times = {}
    for name, job in jobs.items():
        out = subprocess.run(
            ["sacct", "-X", "-P", "-n", "-j", job["job_id"], "--format=Start,End"], capture_output=True, text=True, check=True,
        ).stdout.split()[0]
        times[name] = out.split("|")
    assert times["r8/epoch0"][0] < times["r8"][1], f"epoch 0 evaluated after training ended: {times}"


def test_the_cooldown_example_trains_a_follow_up_from_the_saved_epoch(run_cli, tmp_path: Path):
    configs = TEST_CONFIGS
    result = run_cli("--config-dir", configs, "experiment=resume1", "monitoring=cooldown_single", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "resume1"
    jobs = json.loads((sweep / "jobs.json").read_text())["jobs"]
    assert {name: job["status"] for name, job in jobs.items()} == {"r1": "COMPLETED", "r1_cooldown_1": "COMPLETED"}
    # The run's job ran the plan its launch saved; the rule's follow-up, with overrides of its own, worked its own out.
    assert load_plan(sweep / "r1") == plan_from_saved_config(sweep / "r1") and load_plan(sweep / "r1_cooldown_1") is None
    cooldown_config = (sweep / "r1_cooldown_1" / "outputs" / "torchtune_config.yaml").read_text()
    assert f"checkpoint_dir: {sweep / 'r1' / 'outputs' / 'epoch_1'}" in cooldown_config
    assert "lr: 1.0e-05" in cooldown_config and "epochs: 1" in cooldown_config
    assert (sweep / "r1_cooldown_1" / "outputs" / "epoch_0" / "adapter_model.pt").is_file()
    assert not (sweep / "r1_cooldown_1" / "outputs" / "epoch_1").exists()


def test_each_seed_of_a_command_line_sweep_reaches_torchtune(run_cli, tmp_path: Path):
    configs = TEST_CONFIGS
    result = run_cli(
        "--config-dir", configs, "experiment=resume1", "+seed=1,2", "--multirun", timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "resume1"
    losses = []
    for seed in (1, 2):
        outputs = sweep / f"r1__seed-{seed}" / "outputs"
        assert f"\nseed: {seed}\n" in (outputs / "torchtune_config.yaml").read_text()
        (metric_log,) = (outputs / "logs").glob("log_*.txt")
        losses.append(dict(re.findall(r"^Step (\d+) \| loss:(\S+)", metric_log.read_text(), flags=re.M)))
    # Step 1 cannot differ: LoRA's B matrices start at zero, so neither the seeded A matrices
    # nor seeded dropout change the first forward pass, and torchtune 0.6.1's sampler
    # shuffles with a fixed seed (0). From the first updates on, the seed shows.
    assert losses[0]["1"] == losses[1]["1"] and len(losses[0]) == len(losses[1]) == 6
    assert losses[0] != losses[1], "both replicates trained the same"


def test_a_config_written_for_gpus_trains_on_a_preset_without_them(run_cli, tmp_path: Path):
    from ttlaunch.job.demo_assets import build

    config = build(tmp_path / "assets").read_text()
    assert "device: cpu" in config and "dtype: fp32" in config
    gpu_config = tmp_path / "assets" / "for_gpus.yaml"
    gpu_config.write_text(config.replace("device: cpu", "device: cuda").replace("dtype: fp32", "dtype: bf16"))
    configs = TEST_CONFIGS
    result = run_cli(
        "--config-dir", configs, "experiment=resume1", f"payload.base_config={gpu_config}", "payload.prepare=[]",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = tmp_path / "work" / "ttlaunch_sweeps" / "resume1" / "r1" / "outputs"
    trained = (outputs / "torchtune_config.yaml").read_text()
    assert "device: cpu" in trained and "dtype: fp32" in trained
    assert (outputs / "epoch_0" / "adapter_model.pt").is_file()


@pytest.mark.gpu
@pytest.mark.skipif(cuda_devices() < 2, reason="needs two CUDA GPUs (torchtune's distributed recipes use NCCL)")
def test_the_distributed_lora_recipe_trains_on_two_gpus(run_cli, tmp_path: Path):
    configs = TEST_CONFIGS
    result = run_cli(
        "--config-dir", configs, "experiment=resume1", "compute.gpus_per_node=2",
        'payload.overrides=["device=cuda","dtype=bf16"]', timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    job = json.loads((tmp_path / "work" / "ttlaunch_sweeps" / "resume1" / "jobs.json").read_text())["jobs"]["r1"]
    stdout = Path(job["stdout"]).read_text() + Path(job["stderr"]).read_text()
    assert "tune run --nproc_per_node 2 lora_finetune_distributed" in stdout
    assert (Path(job["output_dir"]) / "epoch_1" / "adapter_model.pt").is_file()
