"""Failures on the real test cluster: each end gets its cause, what the cluster broke is
repaired (a GPU out of memory, the node's memory, a flaky interconnect), what the code broke
is not, and the same error in three runs stops the sweep until a fixed launch."""

import json
import subprocess
from pathlib import Path

import pytest

from support import TEST_CONFIGS, cli_invocation, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

ON_CLUSTER = ["compute=testcluster/cpu_1x", "hydra.callbacks.monitor.poll_interval_s=1", "hydra.callbacks.monitor.live=off"]

# A trainer that fails as a cluster's or a code's failure does, with the messages they print.
# Its micro-batch and accumulation come last as key=value arguments (payload.batch_keys).
FAILING_TRAINER = '''
import sys, time
from pathlib import Path

args = dict(arg.split("=", 1) for arg in sys.argv[1:])
out, case = Path(args["output_dir"]), args["case"]
batch, accumulation = int(args["batch_size"]), int(args["gradient_accumulation_steps"])
out.mkdir(parents=True, exist_ok=True)
traceback = 'Traceback (most recent call last):\\n  File "/opt/train.py", line 90, in step\\n    loss.backward()\\n'
if case == "gpu_oom" and batch > 2:
    sys.exit(traceback + "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.96 GiB. GPU 0 has a total "
             "capacity of 79.10 GiB of which 1.06 GiB is free.")
if case == "host_oom":
    held = b"x" * (400 * 1024 * 1024)  # above the first attempt's 0.4 GB with the job's own Python
    time.sleep(12)  # SLURM samples memory every 5 s here (JobAcctGatherFrequency)
if case == "flaky_nccl" and not (out / "failed_once").exists():
    (out / "failed_once").touch()
    sys.exit("[rank0]:[E1207 10:00:00.123456 1234 ProcessGroupNCCL.cpp:616] [Rank 0] Watchdog caught collective "
             "operation timeout: WorkNCCL(SeqNum=2, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=600000) ran "
             "for 600039 milliseconds before timing out.")
if case == "nan":
    sys.exit(traceback + "RuntimeError: Function 'LogSoftmaxBackward0' returned nan values in its 0th output.")
(out / "effective_batch.txt").write_text(str(batch * accumulation))
'''


def jobs_of(sweep: Path) -> dict:
    return json.loads((sweep / "jobs.json").read_text())["jobs"]


def test_what_the_cluster_broke_is_repaired_and_every_end_has_its_cause(run_cli, tmp_path: Path):
    script = tmp_path / "train.py"
    script.write_text(FAILING_TRAINER)
    result = run_cli(
        "--config-dir", TEST_CONFIGS, "experiment=trainer", *ON_CLUSTER, "compute.mem_gb=0.4", "+case=gpu_oom,host_oom,flaky_nccl,nan",
        "payload=command",
        f"payload.command=[python3,{script},'case={{case}}','output_dir={{output_dir}}','batch_size=8','gradient_accumulation_steps=1']",
        "payload.batch_keys=[batch_size,gradient_accumulation_steps]",
        timeout=420,
    )
    assert result.returncode == 1, result.stderr[-3000:]  # the NaN run failed
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "trainer"
    jobs = jobs_of(sweep)
    status = {name.split("case-")[1]: (job["status"], job["cause"]) for name, job in jobs.items()}
    assert status == {
        "gpu_oom": ("COMPLETED", None), "host_oom": ("COMPLETED", None), "flaky_nccl": ("COMPLETED", None),
        "nan": ("FAILED", "numerical"),
    }, status
    gpu = jobs["r__case-gpu_oom"]
    assert [entry["change"] for entry in gpu["restarts"]] == ["batch 8→4 × accum 1→2", "batch 4→2 × accum 2→4"]
    assert (Path(gpu["output_dir"]) / "effective_batch.txt").read_text() == "8", "the same effective batch"
    host = jobs["r__case-host_oom"]
    assert host["restarts"][0]["after"] == "host_oom" and host["restarts"][0]["change"] == "memory 0.4→0.6 GB"
    assert [entry["after"] for entry in jobs["r__case-flaky_nccl"]["restarts"]] == ["communication"]
    assert jobs["r__case-nan"]["restarts"] == [], "a code's failure is never restarted"

    log = (sweep / "run-torchtune.log").read_text()
    for cause in ("gpu_oom", "host_oom", "communication", "numerical"):
        assert f"Cause: {cause}\n" in log, cause
    summary = (sweep / "summary.md").read_text()
    assert "| r__case-gpu_oom | gpu_oom |" in summary and "batch 8→4 × accum 1→2; batch 4→2 × accum 2→4" in summary
    assert "r__case-nan (Job " in summary and "FAILED (numerical)" in summary


# Trains for minutes on its first attempt, at once on any later one.
SLOW_FIRST_ATTEMPT = (
    "import os, time\nif os.environ['TTLAUNCH_ATTEMPT'] == '1':\n    print('training', flush=True)\n    time.sleep(300)\n"
    "print('trained')\n"
)


def test_a_preemption_requeues_a_run_with_requeue_on_and_ends_one_without_it_preempted(tmp_path: Path):
    """A real preemption: a job in the test cluster's higher-priority partition (urgent)
    takes the whole node from two sweeps' runs; SLURM sends their USR2 and, after its grace
    time, kills what is still there."""
    script = tmp_path / "train.py"
    script.write_text(SLOW_FIRST_ATTEMPT)
    launches, sweeps = {}, {}
    for requeue in ("on", "off"):
        folder = tmp_path / requeue
        folder.mkdir()
        command, env = cli_invocation(
            folder, "--config-dir", TEST_CONFIGS, "experiment=trainer", *ON_CLUSTER, f"requeue={requeue}",
            "requeue.grace_s=5", "payload=command", f"payload.command=[python3,{script}]",
        )
        launches[requeue] = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sweeps[requeue] = folder / "work" / "ttlaunch_sweeps" / "trainer"
    urgent = ""
    try:
        for sweep in sweeps.values():
            wait_for(lambda: "training" in read(jobs_of_now(sweep).get("r", {}).get("stdout")), 180, "the first attempt trains")
        urgent = subprocess.run(
            ["sbatch", "--parsable", "--partition=urgent", "--exclusive", "--output=/dev/null", "--wrap=sleep 5"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        outcome = {requeue: launch.communicate(timeout=240) for requeue, launch in launches.items()}
    finally:
        for launch in launches.values():
            launch.kill()
        subprocess.run(["scancel", urgent or "0"])
    assert launches["on"].returncode == 0, outcome["on"][1][-3000:]
    requeued = jobs_of(sweeps["on"])["r"]
    assert (requeued["status"], requeued["attempt"], requeued["cause"]) == ("COMPLETED", 2, None)
    assert [(entry["attempt"], entry["reason"]) for entry in requeued["requeues"]] == [(1, "preempted")]
    assert requeued["restarts"] == []

    assert launches["off"].returncode == 1, outcome["off"][1][-3000:]
    ended = jobs_of(sweeps["off"])["r"]
    assert (ended["status"], ended["cause"], ended["attempt"]) == ("PREEMPTED", "preempted", 1)
    assert ended["restarts"] == [], "requeue=off: a preempted run stays ended"
    assert "Current: PREEMPTED\n" in (sweeps["off"] / "run-torchtune.log").read_text()
    assert "| r | PREEMPTED | preempted |" in (sweeps["off"] / "summary.md").read_text()


def jobs_of_now(sweep: Path) -> dict:
    """jobs.json's jobs, or none before the launch wrote it."""
    try:
        return jobs_of(sweep)
    except (OSError, ValueError):
        return {}


def read(path: str | None) -> str:
    try:
        return Path(path).read_text() if path else ""
    except OSError:
        return ""


KEY_ERROR = "import sys\nconfig = {'label': 1}\nprint(config['labels'])\n"


def test_the_same_error_in_three_runs_stops_the_sweep_and_the_fixed_command_submits_what_was_held(run_cli, tmp_path: Path):
    script = tmp_path / "train.py"
    script.write_text(KEY_ERROR)
    launch = ("--config-dir", TEST_CONFIGS, "experiment=trainer", *ON_CLUSTER, "+seed=range(0,20)", "payload=command",
              f"payload.command=[python3,{script},'seed={{seed}}']")
    stopped = run_cli(*launch, "hydra.launcher.max_submitted=1", timeout=300)  # one at a time: each failure seen before the next
    assert stopped.returncode == 1, stopped.stderr[-3000:]
    assert "ttlaunch stopped the sweep: the same error ended 3 runs" in stopped.stderr
    assert "KeyError: 'labels'" in stopped.stderr and "after a fix, the same launch command submits what was held back" in stopped.stderr
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "trainer"
    jobs = jobs_of(sweep)
    failed = sorted(name for name, job in jobs.items() if job["status"] == "FAILED")
    assert len(failed) == 3 and all(jobs[name]["cause"] == "code" for name in failed)
    assert len([job for job in jobs.values() if job["status"] == "COMPLETED"]) == 0
    held = json.loads((sweep / "jobs.json").read_text())["unsubmitted"]
    assert len(held) + len(jobs) - 3 == 17, "nothing more submitted after the third"

    script.write_text("print('trained')\n")  # the fix
    fixed = run_cli(*launch, timeout=300)
    assert fixed.returncode == 1, fixed.stderr[-3000:]  # the three failed runs are still the sweep's
    jobs = jobs_of(sweep)
    assert sorted(name for name, job in jobs.items() if job["status"] == "FAILED") == failed
    assert len([job for job in jobs.values() if job["status"] == "COMPLETED"]) == 17
    assert json.loads((sweep / "jobs.json").read_text())["stopped"] is None


XID = "import sys\nsys.exit('NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, name=python, GPU has fallen off the bus.')\n"


def test_a_node_failure_leaves_the_node_out_of_the_restart_as_sbatch_and_squeue_record_it(tmp_path: Path):
    # The test cluster's second node has no daemon (scripts/testcluster.sh): the restart that
    # leaves the first out waits for it, which shows SLURM holds the exclusion.
    script = tmp_path / "train.py"
    script.write_text(XID)
    command, env = cli_invocation(
        tmp_path, "--config-dir", TEST_CONFIGS, "experiment=trainer", *ON_CLUSTER, "remediation.max_excluded_share=0.5",
        "payload=command", f"payload.command=[python3,{script}]", "--multirun",
    )
    launch = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "trainer"
    node = subprocess.run(["hostname", "-s"], capture_output=True, text=True, check=True).stdout.strip()
    try:
        wait_for(lambda: (sweep / "jobs.json").is_file() and jobs_of(sweep).get("r", {}).get("restarts"), 120, "the restart")
        job = jobs_of(sweep)["r"]
        assert job["restarts"][0]["after"] == "node_failure" and job["restarts"][0]["change"] == f"without {node}"
        shown = subprocess.run(["scontrol", "show", "job", job["job_id"]], capture_output=True, text=True).stdout
        assert f"ExcNodeList={node}" in shown and "JobState=PENDING" in shown, shown
        scripts = [path.read_text() for path in Path(job["job_dir"]).rglob("*.sh")]
        assert any(f"#SBATCH --exclude={node}" in text for text in scripts)
        status = subprocess.run([str(Path(command[0]).parent / "ttlaunch"), "status", str(sweep)], capture_output=True, text=True)
        assert f"excluded nodes: {node} (until " in status.stdout, status.stdout
    finally:
        subprocess.run(["scancel", jobs_of(sweep).get("r", {}).get("job_id") or "0"])
        out, err = launch.communicate(timeout=120)
    assert launch.returncode == 1, err[-3000:]


def test_a_node_that_goes_down_under_a_run_is_left_out_of_its_restart(tmp_path: Path):
    script = tmp_path / "train.py"
    script.write_text("import time\ntime.sleep(120)\n")
    command, env = cli_invocation(
        tmp_path, "--config-dir", TEST_CONFIGS, "experiment=trainer", *ON_CLUSTER, "requeue=off",
        "remediation.max_excluded_share=0.5", "payload=command", f"payload.command=[python3,{script}]", "--multirun",
    )
    launch = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "trainer"
    node = subprocess.run(["hostname", "-s"], capture_output=True, text=True, check=True).stdout.strip()
    try:
        wait_for(lambda: (sweep / "jobs.json").is_file() and jobs_of(sweep).get("r", {}).get("status") == "RUNNING", 120, "r running")
        first = jobs_of(sweep)["r"]["job_id"]
        subprocess.run(["scontrol", "update", f"nodename={node}", "state=down", "reason=ttlaunch_test"], check=True)
        wait_for(lambda: jobs_of(sweep)["r"].get("restarts"), 120, "the restart")
        job = jobs_of(sweep)["r"]
        assert job["restarts"][0]["after"] == "node_failure" and job["restarts"][0]["previous_job_id"] == first
        assert job["restarts"][0]["change"] == f"without {node}"
        accounting = subprocess.run(["sacct", "-X", "-n", "-P", "-j", first, "-o", "State"], capture_output=True, text=True).stdout
        assert accounting.strip().startswith("NODE_FAIL"), accounting
    finally:
        subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"])
        subprocess.run(["scancel", jobs_of(sweep).get("r", {}).get("job_id") or "0"])
        out, err = launch.communicate(timeout=120)
    assert launch.returncode == 1, err[-3000:]
    log = (sweep / "run-torchtune.log").read_text()
    assert "Current: NODE_FAIL" in log and "Cause: node_failure" in log
