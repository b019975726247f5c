"""Rules on the real test cluster: a cooldown follow-up, a command fed from a job's output,
crash restarts, and a re-launched monitor that does not repeat what fired."""

import json
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from support import TEST_CONFIGS, cli_invocation, epochs_script, submissions_by_name

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

ON_CLUSTER = ["compute=testcluster/cpu_1x", "hydra.callbacks.monitor.poll_interval_s=1"]
NOTE = "a;touch pwned $(id) `id` && echo"

TRAINER = f"""#!/bin/sh
# Writes its arguments, a note, and three Megatron-style checkpoint lines.
out="$1"; shift
printf '%s\\n' "$@" > "$out/args.txt"
echo 'note: {NOTE}'
for i in 1 2 3; do
  mkdir -p "$out/iter_$i"
  echo "successfully saved checkpoint from iteration $i to $out/iter_$i"
  sleep 4
done
"""


def jobs_of(sweep: Path) -> dict:
    try:
        return json.loads((sweep / "jobs.json").read_text())["jobs"]
    except (OSError, ValueError):
        return {}


def test_a_cooldown_follow_up_fires_once_even_across_a_killed_launcher(run_cli, tmp_path: Path):
    began = datetime.now().replace(microsecond=0)
    script = tmp_path / "trainer.sh"
    script.write_text(TRAINER)
    args = [
        "--config-dir", TEST_CONFIGS, "experiment=trainer", *ON_CLUSTER, "monitoring=cooldown_test",
        "payload=command", f'payload.command=[sh,"{script}","{{output_dir}}"]',
    ]
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "trainer"
    command, env = cli_invocation(tmp_path, *args)
    first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while "r_cooldown_2" not in jobs_of(sweep):
        assert time.monotonic() < deadline, "no cooldown was submitted"
        time.sleep(0.2)
    first.kill()  # as kill -9: the original run is still writing checkpoints
    first.wait()
    assert jobs_of(sweep)["r"]["status"] != "COMPLETED", "the original ended before the launcher was killed"

    again = run_cli(*args, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    jobs = jobs_of(sweep)
    assert {name: job["status"] for name, job in jobs.items()} == {"r": "COMPLETED", "r_cooldown_2": "COMPLETED"}
    assert submissions_by_name(jobs, began) == {"r": 1, "r_cooldown_2": 1}

    # The follow-up inherits the run's config and adds its own overrides.
    cooldown = jobs["r_cooldown_2"]
    assert cooldown["run_name"] == "r"
    inherited = (sweep / "r_cooldown_2" / "hydra_configs" / "overrides.yaml").read_text()
    assert "experiment=trainer" in inherited and "payload.command=" in inherited
    args_seen = (sweep / "r_cooldown_2" / "outputs" / "args.txt").read_text().splitlines()
    assert args_seen == ["--load", str(sweep / "r" / "outputs" / "iter_2"), "--lr", "0.1"]

    # A value from the job's output reaches the command as plain text.
    assert (sweep / "notes" / NOTE).is_dir()
    assert not (sweep / "pwned").exists() and not (tmp_path / "pwned").exists()

    log = (sweep / "run-torchtune.log").read_text()
    assert log.count("Result: submitted as job") == 1
    assert "Message: checkpoint of iteration 2 in" in log
    assert "Result: already submitted (job" in log, "the follow-up's own checkpoints do not start another"


def test_a_crashing_run_restarts_up_to_max_attempts_then_stops(run_cli, tmp_path: Path):
    began = datetime.now().replace(microsecond=0)
    result = run_cli("--config-dir", TEST_CONFIGS, "experiment=probe", *ON_CLUSTER, "monitoring=crash_restart", timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    jobs = jobs_of(tmp_path / "work" / "ttlaunch_sweeps" / "probe")
    bad = jobs["bad_run"]
    assert bad["status"] == "FAILED" and len(bad["previous_job_ids"]) == 2
    assert [entry["after"] for entry in bad["restarts"]] == ["FAILED", "FAILED"]
    assert jobs["ok_run"]["status"] == "COMPLETED" and jobs["ok_run"]["previous_job_ids"] == []
    assert submissions_by_name(jobs, began) == {"bad_run": 3, "ok_run": 1}
    log = (tmp_path / "work" / "ttlaunch_sweeps" / "probe" / "run-torchtune.log").read_text()
    assert log.count("RESTART: bad_run") == 2
    assert "Result: skipped: 3 attempts (max_attempts 3)" in log


def test_evaluations_start_as_their_checkpoints_appear_and_are_monitored(run_cli, tmp_path: Path):
    script = tmp_path / "epochs.sh"
    script.write_text(epochs_script(3, then_s=3))
    result = run_cli(
        "--config-dir", TEST_CONFIGS, "experiment=evaltest", *ON_CLUSTER, "payload=command",
        f'payload.command=[sh,"{script}","{{output_dir}}"]',
        'evaluation.command=[sh,-c,"sleep 2; echo {task} {checkpoint} > {output_dir}/result.txt",evaluate]',
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "evaltest"
    jobs = jobs_of(sweep)
    assert sorted(jobs) == ["base/t1", "r", "r/t1/epoch0", "r/t1/epoch1"]
    assert all(job["status"] == "COMPLETED" for job in jobs.values())
    assert [jobs[name]["kind"] for name in sorted(jobs)] == ["evaluation", "training", "evaluation", "evaluation"]
    # The control, on its base model as it is.
    assert (sweep / "base" / "t1" / "outputs" / "result.txt").read_text().split() == ["t1", "/tmp"]
    assert jobs["r/t1/epoch0"]["submitted"] < jobs["r"]["completed"], "epoch 0 was evaluated while training went on"
    for epoch in (0, 1):
        result_file = sweep / "r" / "t1" / f"epoch{epoch}" / "outputs" / "result.txt"
        assert result_file.read_text().split() == ["t1", str(sweep / "r" / "outputs" / f"epoch_{epoch}")]
    log = (sweep / "run-torchtune.log").read_text()
    entries = log.strip().split("\n\n")
    for epoch in (0, 1):
        changes = [entry for entry in entries if f"STATE_CHANGE: r/t1/epoch{epoch}\n" in entry]
        assert "Current: COMPLETED" in changes[-1]
        assert any(f"COMPUTE_METRICS: r/t1/epoch{epoch}\n" in entry for entry in entries)
    assert "VALIDATION" not in log, "a command payload has no checkpoint layout to validate"


def test_with_remediation_off_an_out_of_memory_run_is_not_restarted_as_before(run_cli, tmp_path: Path):
    result = run_cli(
        "--config-dir", TEST_CONFIGS, "experiment=trainer", *ON_CLUSTER, "monitoring=crash_restart", "compute.mem_gb=0.3",
        "remediation=off",
        "payload=command", "payload.command=[python3,-c,'import time; x = b\"x\" * (900 * 1024 * 1024); time.sleep(60)']",
        timeout=300,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    job = jobs_of(tmp_path / "work" / "ttlaunch_sweeps" / "trainer")["r"]
    # Without cgroups SLURM records FAILED; the job's stderr says why.
    assert job["status"] in ("FAILED", "OUT_OF_MEMORY") and "Exceeded job memory limit" in Path(job["stderr"]).read_text()
    assert job["previous_job_ids"] == [] and job["restarts"] == [], "restarted after running out of memory"
    assert job["cause"] == "host_oom", "the cause is recorded all the same"
    log = (tmp_path / "work" / "ttlaunch_sweeps" / "trainer" / "run-torchtune.log").read_text()
    assert "Result: not restarted after OUT_OF_MEMORY (on_oom=never)" in log
