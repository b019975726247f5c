"""The SLURM launch path, on the project's real single-node test cluster."""

import json
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from support import TEST_CONFIGS

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

ON_CLUSTER = ["compute=testcluster/cpu_1x", "hydra.callbacks.monitor.poll_interval_s=1"]


def sacct(job_ids, settle_s: float = 15.0):
    """sacct rows by job id, once accounting has caught up: slurmdbd lags slurmctld, and a
    job whose name has not reached it yet shows as 'allocation'."""
    import time

    deadline = time.monotonic() + settle_s
    while True:
        out = subprocess.run(
            ["sacct", "-X", "-P", "-n", "-j", ",".join(job_ids), "--format=JobID,JobName,State,Submit,ExitCode"],
            capture_output=True, text=True, check=True,
        ).stdout
        rows = {row.split("|")[0]: row.split("|") for row in out.splitlines()}
        settled = len(rows) == len(job_ids) and all(row[1] != "allocation" for row in rows.values())
        if settled or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def state_of(sweep: Path):
    return json.loads((sweep / "jobs.json").read_text())["jobs"]


def test_cap_4L_submits_exactly_its_fine_tuned_runs_with_the_stagger(run_cli, tmp_path: Path):
    launch = ["experiment=cap_4L", *ON_CLUSTER, "payload=command", "payload.command=[sleep,'1']", "stagger=fixed_delay"]
    dry_run = run_cli(*launch, "hydra.launcher.dry_run=true")
    assert dry_run.returncode == 0, dry_run.stderr[-3000:]
    result = run_cli(*launch, "stagger.seconds=2", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "cap_4L_lora_lr_sweep"
    jobs = state_of(sweep)
    for name, job in jobs.items():  # the dry run showed exactly what was submitted
        submitted = (sweep / name / "submitit" / f"{job['job_id']}_submission.sh").read_text()
        shown = (sweep / "dry_run" / f"{name}.sbatch").read_text()
        assert shown.startswith(submitted) and shown[len(submitted):].startswith("# payload: sleep 1"), name
    assert len(jobs) == 8 and all(job["status"] == "COMPLETED" for job in jobs.values())
    accounted = sacct([job["job_id"] for job in jobs.values()])
    assert sorted(row[1] for row in accounted.values()) == sorted(jobs)  # SLURM job names are the run names
    assert all(row[2] == "COMPLETED" for row in accounted.values())
    submits = sorted(datetime.fromisoformat(row[3]) for row in accounted.values())
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(submits, submits[1:])]
    assert min(gaps) >= 2, gaps


def test_a_failing_payload_ends_failed_in_sacct(run_cli, tmp_path: Path):
    result = run_cli("--config-dir", TEST_CONFIGS, "experiment=probe", *ON_CLUSTER)
    assert result.returncode == 1
    jobs = state_of(tmp_path / "work" / "ttlaunch_sweeps" / "probe")
    accounted = sacct([jobs["ok_run"]["job_id"], jobs["bad_run"]["job_id"]])
    assert accounted[jobs["ok_run"]["job_id"]][2] == "COMPLETED"
    assert accounted[jobs["bad_run"]["job_id"]][2] == "FAILED"
    assert jobs["bad_run"]["status"] == "FAILED"
    # Compute metrics of both ended jobs, limit from the preset (10 min).
    log = (tmp_path / "work" / "ttlaunch_sweeps" / "probe" / "run-torchtune.log").read_text()
    for name in ("ok_run", "bad_run"):
        assert f"COMPUTE_METRICS: {name}\nJob ID: {jobs[name]['job_id']}\nGPU Time: " in log
        assert jobs[name]["metrics"]["time_limit_s"] == 600
    assert "/ 00:10:00 (" in log
    assert log.count("STATUS_CHECK: Polling") >= 1
    # Times and exit codes are accounting's, not when the launcher happened to look.
    times = subprocess.run(
        ["sacct", "-X", "-P", "-n", "-j", jobs["bad_run"]["job_id"], "--format=Start,End,ExitCode"],
        capture_output=True, text=True, check=True,
    ).stdout.strip().split("|")
    assert [jobs["bad_run"]["started"], jobs["bad_run"]["completed"]] == [t.replace("T", " ") for t in times[:2]]
    assert jobs["bad_run"]["exit_code"] == times[2] != "0:0"
    assert f"Exit code: {times[2]}" in log


def test_a_rejected_submission_is_logged_and_the_others_still_run(run_cli, tmp_path: Path):
    cfg = tmp_path / "cfg" / "experiment"
    (tmp_path / "cfg" / "payload").mkdir(parents=True)
    shutil.copy(Path(TEST_CONFIGS) / "payload" / "probe.yaml", tmp_path / "cfg" / "payload")
    cfg.mkdir(parents=True)
    (cfg / "mixed.yaml").write_text(
        "defaults:\n  - override /payload@_global_.payload: probe\n"
        "experiment: {name: mixed}\nruns:\n"
        "  - {name: first, type: fine-tuned, code: 0}\n"
        "  - {name: nowhere, type: fine-tuned, code: 0, compute: {partition: no_such_partition}}\n"
        "  - {name: last, type: fine-tuned, code: 0}\n"
    )
    result = run_cli(
        "--config-dir", str(tmp_path / "cfg"), "experiment=mixed", *ON_CLUSTER,
    )
    assert result.returncode == 1
    assert "1 of 3 jobs did not complete: nowhere" in result.stderr
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "mixed"
    jobs = state_of(sweep)
    assert (jobs["first"]["status"], jobs["nowhere"]["status"], jobs["last"]["status"]) == (
        "COMPLETED", "SUBMIT_FAILED", "COMPLETED",
    )
    log = (sweep / "run-torchtune.log").read_text()
    assert "SUBMIT_FAILED: nowhere" in log and "invalid partition" in log.lower()


@pytest.mark.parametrize(("requeue", "flag"), [("on", "Requeue=1"), ("off", "Requeue=0")])
def test_requeue_choice_reaches_slurm(tmp_path: Path, requeue: str, flag: str):
    import os
    import sys
    import time

    cfg = tmp_path / "cfg" / "experiment"
    cfg.mkdir(parents=True)
    (cfg / "one.yaml").write_text("experiment: {name: one}\nruns: [{name: only, type: fine-tuned}]\n")
    command = [
        sys.executable, "-m", "ttlaunch.launch", "--config-dir", str(tmp_path / "cfg"), "experiment=one",
        f"requeue={requeue}", *ON_CLUSTER, "payload=command", "payload.command=[sleep,'120']",
        f"paths.work_root={tmp_path / 'work'}",
    ]
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    launcher = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    state = tmp_path / "work" / "ttlaunch_sweeps" / "one" / "jobs.json"
    deadline = time.monotonic() + 60
    while not (state.exists() and json.loads(state.read_text())["jobs"].get("only", {}).get("job_id")):
        assert time.monotonic() < deadline and launcher.poll() is None, launcher.stderr.read() if launcher.poll() else ""
        time.sleep(0.2)
    job_id = json.loads(state.read_text())["jobs"]["only"]["job_id"]
    shown = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=True).stdout
    subprocess.run(["scancel", job_id], check=True)
    launcher.communicate(timeout=120)
    assert flag in shown.split()
    assert launcher.returncode == 1  # the cancelled job did not complete


def _times(jobs, accounted, field):
    index = {"submit": 3}[field]
    return sorted(datetime.fromisoformat(accounted[job["job_id"]][index]) for job in jobs.values())


def test_the_startup_lock_hook_submits_at_once_and_serialises_startups(run_cli, tmp_path: Path):
    result = run_cli(
        "--config-dir", TEST_CONFIGS, "experiment=stamp4", *ON_CLUSTER,
        "stagger=startup_lock", "stagger.window_s=2", timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "stamp4"
    jobs = state_of(sweep)
    submits = _times(jobs, sacct([job["job_id"] for job in jobs.values()]), "submit")
    assert (submits[-1] - submits[0]).total_seconds() <= 3, "all four went in at once"
    starts = sorted(float((sweep / name / "outputs" / "started.txt").read_text()) for name in jobs)
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:])]
    # Each start-up holds the lock for the 2-s window; stamps add milliseconds of jitter.
    assert min(gaps) >= 1.9, f"payload start-ups overlap: {gaps}"


def test_max_submitted_caps_the_sweeps_jobs_in_the_queue(run_cli, tmp_path: Path):
    result = run_cli(
        "--config-dir", TEST_CONFIGS, "experiment=stamp4", *ON_CLUSTER,
        "hydra.launcher.max_submitted=2", timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = state_of(tmp_path / "work" / "ttlaunch_sweeps" / "stamp4")
    out = subprocess.run(
        ["sacct", "-X", "-P", "-n", "-j", ",".join(job["job_id"] for job in jobs.values()), "--format=JobID,Submit,End"],
        capture_output=True, text=True, check=True,
    ).stdout
    spans = [(datetime.fromisoformat(s), datetime.fromisoformat(e)) for _, s, e in (line.split("|") for line in out.splitlines())]
    assert len(spans) == 4
    for submit, _ in spans:  # when each job went in, at most 2 of the sweep's were in the queue
        in_queue = sum(1 for other_submit, other_end in spans if other_submit <= submit < other_end)
        assert in_queue <= 2, spans


def test_a_state_file_cut_while_jobs_are_queued_is_rebuilt_and_every_run_runs_once(run_cli, tmp_path: Path):
    config = tmp_path / "cfg" / "experiment" / "cutq.yaml"
    config.parent.mkdir(parents=True)
    began = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    names = [f"cutq_{index}" for index in range(3)]
    config.write_text("experiment: {name: cutq}\nruns:\n" + "".join(f"  - {{name: {name}, type: fine-tuned}}\n" for name in names))
    args = ["--config-dir", str(tmp_path / "cfg"), "experiment=cutq", *ON_CLUSTER,
            "payload=command", "payload.command=[sleep,'6']"]
    submitted = run_cli(*args, "~hydra.callbacks.monitor", timeout=120)  # submitted, nobody monitoring
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "cutq"
    state = sweep / "jobs.json"
    first_ids = {name: job["job_id"] for name, job in state_of(sweep).items()}
    state.write_text(state.read_text()[: len(state.read_text()) // 2])  # cut while the jobs are queued or running

    refused = run_cli(*args, timeout=120)
    assert refused.returncode == 2 and f"ttlaunch: error: {state}: not valid JSON" in refused.stderr
    rebuilt = subprocess.run([sys.executable, "-m", "ttlaunch", "status", str(sweep), "--rebuild"], capture_output=True, text=True, timeout=120)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert {name: job["job_id"] for name, job in state_of(sweep).items()} == first_ids

    finished = run_cli(*args, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    jobs = state_of(sweep)
    assert all(job["status"] == "COMPLETED" for job in jobs.values()) and len(jobs) == 3
    assert {name: job["job_id"] for name, job in jobs.items()} == first_ids
    ran = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", began, "--name", ",".join(names), "--format=JobName"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    assert sorted(ran) == sorted(names), "every run submitted exactly once"


def test_a_run_whose_controller_cannot_be_reached_says_why_in_the_summary(run_cli, tmp_path: Path, monkeypatch):
    config = tmp_path / "cfg" / "experiment" / "away.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("experiment: {name: away}\nruns: [{name: r, type: fine-tuned}]\n")
    # The real sbatch, told that the controller listens on a port where nothing does.
    real = next(line.split(" = ")[1] for line in subprocess.run(
        ["scontrol", "show", "config"], capture_output=True, text=True, check=True).stdout.splitlines() if line.startswith("SLURM_CONF"))
    lines = [line for line in Path(real).read_text().splitlines() if not line.startswith("SlurmctldPort")]
    (tmp_path / "slurm.conf").write_text("\n".join([*lines, "SlurmctldPort=6999"]) + "\n")
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "slurm.conf"))
    result = run_cli("--config-dir", str(tmp_path / "cfg"), "experiment=away", *ON_CLUSTER, "payload=command",
                     "payload.command=[sleep,'0']", timeout=120)
    assert result.returncode == 1, result.stderr[-3000:]
    summary = (tmp_path / "work" / "ttlaunch_sweeps" / "away" / "summary.md").read_text()
    assert "- r never started (SUBMIT_FAILED): its submission failed: " in summary
    assert "Unable to contact slurm controller (connect failure)" in summary
    assert "grep -i error" not in summary, "no log to look at"
