"""A job of several tasks on the real test cluster: two tasks of one job run a small PyTorch
DDP trainer (gloo, CPU) through ttlaunch's wrapper and rendezvous, as two nodes would (the
test cluster has one node). The trainer trains in sync and the job COMPLETES; a trainer
failing on one rank makes its job FAILED."""

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

TESTS = Path(__file__).parent


def test_two_tasks_train_one_ddp_model_and_a_failing_rank_fails_its_job(run_cli, tmp_path: Path):
    pytest.importorskip("torch")
    trainer = TESTS / "payloads" / "ddp_train.py"
    result = run_cli(
        "--config-dir", str(TESTS / "configs"), "experiment=ddp", "compute=testcluster/cpu_1x",
        "compute.tasks_per_node=2", "compute.mem_gb=3", "payload.torchrun=true",
        f"payload.command=[python,'{trainer}','{{output_dir}}',--fail-rank,'{{fail_rank}}']",
        "hydra.callbacks.monitor.poll_interval_s=1", "hydra.launcher.stagger.seconds=0", timeout=400,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "ddp"
    jobs = json.loads((sweep / "jobs.json").read_text())["jobs"]
    assert (jobs["ok_run"]["status"], jobs["bad_run"]["status"]) == ("COMPLETED", "FAILED")

    ranks = [json.loads((sweep / "ok_run" / "outputs" / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [(r["rank"], r["world_size"], r["node_rank"], r["steps"]) for r in ranks] == [(0, 2, 0, 50), (1, 2, 1, 50)]
    assert ranks[0]["checksum"] == ranks[1]["checksum"], "DDP kept the two ranks' weights in sync"
    assert ranks[0]["loss"] < 1.0, "it trained"
    job_dir = sweep / "ok_run"
    assert len(list(job_dir.glob(".attempt-*-1.json"))) == 1, "task 0 decided where the attempt starts, once"
    job_id = jobs["ok_run"]["job_id"]
    task_logs = sorted(p.name for p in (job_dir / "submitit").glob(f"{job_id}_*_log.out"))
    assert task_logs == [f"{job_id}_0_log.out", f"{job_id}_1_log.out"], "one wrapper per task"
    for task in (0, 1):
        started = (job_dir / "submitit" / task_logs[task]).read_text()
        assert f"torch.distributed.run --nnodes 2 --node_rank {task} --master_addr " in started
    assert not (sweep / "bad_run" / "outputs" / "rank1.json").exists()
