"""Early stopping on the test cluster, with real torchtune and real inspect-ai on CPU: the
demo's task as a 9-point sweep pruned by an evaluation's score, detached; its monitor job
requeued mid-sweep changes no decision, and a re-launch with `pruning=off` completes the
pruned runs from their checkpoints."""

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from support import queued, wait_for

pytest.importorskip("torchtune")
pytestmark = [pytest.mark.slurm, pytest.mark.torchtune, pytest.mark.usefixtures("slurm_cluster")]

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "experiment"
# The demo's task, each run's first two epochs evaluated: the rungs' checkpoints.
EXPERIMENT = """
defaults:
  - override /payload@_global_.payload: tiny_llama_demo
experiment: {name: halving_scores}
controls: {lora_alpha: 16, epochs: 3, batch_size: 1, max_steps_per_epoch: 120}
models:
  base: [{name: tiny-llama, path: "${paths.work_dir}/demo_assets/model"}]
runs:
  - {name: lr1e-3, type: fine-tuned, model: tiny-llama, parameters: {lr: 1.0e-3}}
  - {name: lr3e-3, type: fine-tuned, model: tiny-llama, parameters: {lr: 3.0e-3}}
  - {name: lr1e-2, type: fine-tuned, model: tiny-llama, parameters: {lr: 1.0e-2}}
evaluation:
  max_tokens: 4
  do_sample: false
  tasks: [{name: capitalize, script: demo_task.py}]
  matrix:
    - {run: lr1e-3, tasks: [capitalize], epochs: [0, 1]}
    - {run: lr3e-3, tasks: [capitalize], epochs: [0, 1]}
    - {run: lr1e-2, tasks: [capitalize], epochs: [0, 1]}
"""
SWEEP = ["experiment=halving_scores", "+lora_rank=1,2,4", "compute=testcluster/cpu_1x", "hydra.callbacks.monitor.poll_interval_s=2"]


def state_of(sweep: Path) -> dict:
    try:
        return json.loads((sweep / "jobs.json").read_text())
    except (OSError, ValueError):  # being replaced
        return {}


def test_a_detached_sweep_pruned_by_scores_keeps_its_decisions_through_a_monitor_requeue_and_pruning_off_completes_it(
    run_cli, tmp_path: Path,
):
    configs = tmp_path / "configs" / "experiment"
    configs.mkdir(parents=True)
    (configs / "halving_scores.yaml").write_text(EXPERIMENT)
    shutil.copy(CONFIGS / "demo_task.py", configs)
    launched = run_cli(
        "--config-dir", str(tmp_path / "configs"), *SWEEP, "pruning=halving", "pruning.metric=capitalize/match", "detach=true",
        "--multirun", timeout=180,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "halving_scores"
    monitor_job = state_of(sweep)["monitor_job_id"]

    # Requeued once the first points are judged: the same job comes back and carries on.
    wait_for(lambda: state_of(sweep).get("rungs"), 600, "the first decisions")
    subprocess.run(["scontrol", "requeue", monitor_job], check=True)
    wait_for(lambda: queued(monitor_job) is None, 900, "the monitor job to finish the sweep")
    state = state_of(sweep)
    assert all(job["status"] in ("COMPLETED", "PRUNED") for job in state["jobs"].values()), state["jobs"]
    training = {name: job for name, job in state["jobs"].items() if job["kind"] == "training"}
    assert len(training) == 9
    decisions = state["rungs"]
    assert len({(decision["point"], decision["rung"]) for decision in decisions}) == len(decisions), "decided twice"
    log = (sweep / "run-torchtune.log").read_text()
    assert log.count("] PRUNING: ") == len(decisions)
    for decision in decisions:  # each made on the score of its rung's evaluation
        score = state["jobs"][f"{decision['point']}/capitalize/epoch{decision['rung'] - 1}"]["scores"]["metrics"]["match/accuracy"]
        assert decision["measure"] == score
        for job in decision["jobs"]:  # and what it decided stands
            assert (training[job]["status"] == "PRUNED") == (not decision["kept"]) or training[job]["pruned_at"] is None
    pruned = [name for name, job in training.items() if job["status"] == "PRUNED"]
    assert len(pruned) >= 5, training
    assert "requeued" in log or "REQUEUED" in log or state["monitor_job_id"] == monitor_job

    # pruning=off: the pruned runs resume from their checkpoints and train to the end.
    began = time.monotonic()
    resumed = run_cli(
        "--config-dir", str(tmp_path / "configs"), *SWEEP, "pruning=off", "evaluation.enabled=false", "--multirun", timeout=900,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = state_of(sweep)
    assert after["rungs"] == decisions
    for name in pruned:
        job = after["jobs"][name]
        assert job["status"] == "COMPLETED" and job["previous_job_ids"] == [training[name]["job_id"]]
        assert job["training"]["steps_done"] == job["training"]["steps_total"] == 3 * 120
        assert "resuming from" in Path(job["stderr"]).read_text().lower() or (sweep / name / "outputs" / "epoch_2").is_dir()
    for name, job in training.items():
        if job["status"] == "COMPLETED":
            assert after["jobs"][name]["job_id"] == job["job_id"], "a completed run is left as it was"
    assert time.monotonic() - began < 900
