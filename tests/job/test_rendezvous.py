"""Where the tasks of a multi-task job meet, and the one decision they share (unit level;
the real thing runs on the test cluster in tests/test_multitask_cluster.py)."""

import sys
import threading
from pathlib import Path

import pytest

from ttlaunch.inputs.payload_command import PayloadCommand
from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.job.job_payloads import distributed, job_payload
from ttlaunch.job.rendezvous import PORT_BASE, agreed, rendezvous_of, task_rank

TWO_TASKS = {"SLURM_NTASKS": "2", "SLURM_PROCID": "1", "SLURM_JOB_ID": "20123", "SLURM_JOB_NODELIST": "gpu[07-08]"}


def hosts(nodelist: str) -> list[str]:
    assert nodelist == "gpu[07-08]"
    return ["gpu07", "gpu08"]


def test_the_tasks_meet_at_the_first_host_on_a_port_of_their_job():
    rendezvous = rendezvous_of(TWO_TASKS, hosts)
    assert rendezvous.torchrun_args() == [
        "--nnodes", "2", "--node_rank", "1", "--master_addr", "gpu07", "--master_port", str(PORT_BASE + 123),
    ]
    assert rendezvous_of({**TWO_TASKS, "SLURM_NTASKS": "1"}, hosts) is None, "one task: nothing to meet"
    assert rendezvous_of({}, hosts) is None
    assert task_rank({"SLURM_PROCID": "garbage"}) == 0 and task_rank(TWO_TASKS) == 1


def test_each_task_starts_its_part_of_the_trainer(tmp_path: Path):
    rendezvous = rendezvous_of(TWO_TASKS, hosts)
    tune = PayloadCommand(("tune", "run", "--nproc_per_node", "4", "lora_finetune_distributed", "--config", "c"), {}, tmp_path)
    started = distributed(tune, job_payload(PayloadKind.torchtune), False, rendezvous, 4)
    assert started.argv[:12] == (
        "tune", "run", "--nnodes", "2", "--node_rank", "1", "--master_addr", "gpu07", "--master_port",
        str(PORT_BASE + 123), "--nproc_per_node", "4",
    )
    assert started.env == {"TTLAUNCH_TASK": "1", "TTLAUNCH_TASKS": "2"}
    ddp = PayloadCommand(("python", "train.py"), {"A": "1"}, tmp_path)
    assert distributed(ddp, job_payload(PayloadKind.command), True, rendezvous, 0).argv == (
        sys.executable, "-m", "torch.distributed.run", *rendezvous.torchrun_args(), "--nproc_per_node", "1",
        "--no-python", "python", "train.py",
    )
    assert distributed(ddp, job_payload(PayloadKind.command), True, None, 2).argv[3:6] == ("--standalone", "--nproc_per_node", "2")
    assert distributed(ddp, job_payload(PayloadKind.command), False, rendezvous, 0).argv == ("python", "train.py"), "not asked for torchrun"


def test_task_0_decides_and_the_others_act_on_its_decision(tmp_path: Path):
    path = tmp_path / ".attempt-1-1.json"
    seen: list[str] = []
    waiting = threading.Thread(target=lambda: seen.append(agreed(path, 1, lambda: pytest.fail("task 1 decided"))))
    waiting.start()
    assert agreed(path, 0, lambda: "resume") == "resume"
    waiting.join(timeout=10)
    assert seen == ["resume"]
    with pytest.raises(TimeoutError, match="task 0 wrote no decision"):
        agreed(tmp_path / "never.json", 2, lambda: "fresh", timeout_s=0.6)
