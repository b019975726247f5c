"""A job of several tasks on the real test cluster: two tasks of one job run a small PyTorch
DDP trainer (gloo, CPU) through ttlaunch's wrapper and rendezvous, as two nodes would (the
test cluster has one node). The trainer trains in sync and the job COMPLETES; a trainer
failing on one rank makes its job FAILED."""

import json
from pathlib import Path

import pytest

from support import TESTS

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]



def test_two_tasks_train_one_ddp_model_and_a_failing_rank_fails_its_job(run_cli, tmp_path: Path):
    pytest.importorskip("torch")
    trainer = TESTS / "payloads" / "ddp_train.py"
    result = run_cli(
        "--config-dir", str(TESTS / "configs"), "experiment=ddp", "compute=testcluster/cpu_1x",
        "compute.tasks_per_node=2", "compute.mem_gb=3", "payload.torchrun=true",
        f"payload.command=[python,'{trainer}','{{output_dir}}',--fail-rank,'{{fail_rank}}']",
        "hydra.callbacks.monitor.poll_interval_s=1", timeout=400,
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


def test_a_requeued_job_of_two_tasks_starts_both_again_on_one_shared_decision(tmp_path: Path):
    import subprocess
    import time

    from support import cli_invocation

    # Only the first attempt lasts: long enough to be requeued while both tasks run.
    record = (
        "echo task=$TTLAUNCH_TASK attempt=$TTLAUNCH_ATTEMPT resume=$TTLAUNCH_RESUME >> $0/starts.txt; "
        "[ $TTLAUNCH_ATTEMPT != 1 ] || sleep 25"
    )
    command, env = cli_invocation(
        tmp_path, "--config-dir", str(TESTS / "configs"), "experiment=probe_ok", "compute=testcluster/cpu_1x",
        "compute.tasks_per_node=2", "requeue=on", "payload=command", f"payload.command=[sh,-c,'{record}','{{output_dir}}']",
        "hydra.callbacks.monitor.poll_interval_s=1",
    )
    launch = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "probe_ok"
    starts = sweep / "ok_run" / "outputs" / "starts.txt"
    deadline = time.monotonic() + 120
    while not (starts.is_file() and starts.read_text().count("\n") == 2):
        assert time.monotonic() < deadline, "the two tasks never started"
        time.sleep(0.2)
    job_id = json.loads((sweep / "jobs.json").read_text())["jobs"]["ok_run"]["job_id"]
    subprocess.run(["scontrol", "requeue", job_id], check=True)
    _, stderr = launch.communicate(timeout=300)
    assert launch.returncode == 0, stderr[-3000:]
    assert sorted(starts.read_text().splitlines()) == [
        "task=0 attempt=1 resume=0", "task=0 attempt=2 resume=1", "task=1 attempt=1 resume=0", "task=1 attempt=2 resume=1",
    ]
    job = json.loads((sweep / "jobs.json").read_text())["jobs"]["ok_run"]
    assert (job["status"], job["attempt"]) == ("COMPLETED", 2)
    assert [(entry["attempt"], entry["reason"]) for entry in job["requeues"]] == [(1, "requeued by scontrol or the scheduler")]
    decisions = sorted(path.name for path in (sweep / "ok_run").glob(".attempt-*.json"))
    assert decisions == [f".attempt-{job_id}-1.json", f".attempt-{job_id}-2.json"], "one decision per attempt"
