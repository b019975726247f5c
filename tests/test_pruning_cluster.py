"""Early stopping on the test cluster, with real torchtune on CPU: the demo's task as a
9-point sweep (3 learning rates x 3 LoRA ranks, 3 epochs, rungs after epochs 1 and 2),
detached; its monitor job requeued mid-sweep changes no decision, and a re-launch with
`pruning=off` completes the pruned runs from their checkpoints. (The full sweep beside the
pruned one, and a score as the measure: tests/test_pruning_e2e.py.)"""

import json
import subprocess
from pathlib import Path

import pytest

from support import queued, wait_for

pytest.importorskip("torchtune")
pytestmark = [pytest.mark.slurm, pytest.mark.torchtune, pytest.mark.usefixtures("slurm_cluster")]

STEPS = 150  # per epoch, of one example
SWEEP = [
    "experiment=demo", "+lora_rank=1,2,4", "+epochs=3", "+batch_size=1", f"+max_steps_per_epoch={STEPS}", "evaluation.enabled=false",
    "compute=testcluster/cpu_1x", "hydra.callbacks.monitor.poll_interval_s=2",
]


def state_of(sweep: Path) -> dict:
    try:
        return json.loads((sweep / "jobs.json").read_text())
    except (OSError, ValueError):  # being replaced
        return {}


def test_a_detached_pruned_sweep_keeps_its_decisions_through_a_monitor_requeue_and_pruning_off_completes_it(
    run_cli, tmp_path: Path,
):
    launched = run_cli(*SWEEP, "pruning=halving", "detach=true", "--multirun", timeout=180)
    assert launched.returncode == 0, launched.stderr[-3000:]
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "demo"
    monitor_job = state_of(sweep)["monitor_job_id"]

    # Requeued once the first points are judged: the same job comes back and carries on.
    wait_for(lambda: state_of(sweep).get("rungs"), 600, "the first decisions")
    first = state_of(sweep)["rungs"]
    subprocess.run(["scontrol", "requeue", monitor_job], check=True)
    wait_for(lambda: queued(monitor_job) is None, 900, "the monitor job to finish the sweep")
    monitor_log = next((sweep / ".monitor_job" / "submitit").glob(f"{monitor_job}_0_log.err")).read_text()
    assert "DUE TO JOB REQUEUE" in monitor_log
    state = state_of(sweep)
    training = state["jobs"]
    assert len(training) == 9 and {job["status"] for job in training.values()} == {"COMPLETED", "PRUNED"}, training
    decisions = state["rungs"]
    assert decisions[: len(first)] == first, "a decision made before the requeue changed"
    assert len({(decision["point"], decision["rung"]) for decision in decisions}) == len(decisions), "decided twice"
    assert (sweep / "run-torchtune.log").read_text().count("] PRUNING: ") == len(decisions)
    pruned = {name for name, job in training.items() if job["status"] == "PRUNED"}
    assert pruned == {job for decision in decisions if not decision["kept"] for job in decision["jobs"]}
    assert len(pruned) >= 5 and all(training[name]["pruned_at"] in (1, 2) for name in pruned)

    # pruning=off: the pruned runs resume from their checkpoints and train to the end.
    resumed = run_cli(*SWEEP, "pruning=off", "--multirun", timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = state_of(sweep)
    assert after["rungs"] == decisions
    for name, job in training.items():
        now = after["jobs"][name]
        assert now["status"] == "COMPLETED"
        if name not in pruned:
            assert now["job_id"] == job["job_id"], "a completed run is left as it was"
            continue
        assert now["previous_job_ids"] == [job["job_id"]]
        assert now["training"]["steps_done"] == now["training"]["steps_total"] == 3 * STEPS
        assert "resume_from_checkpoint: true" in (sweep / name / "outputs" / "torchtune_config.yaml").read_text()
        assert (sweep / name / "outputs" / "epoch_2" / "adapter_config.json").is_file()
