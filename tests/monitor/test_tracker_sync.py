"""Offline W&B runs synced without a person: each run dir handed to `wandb sync` once per
change and at the end, a failing sync said once without stopping the sweep, `ttlaunch sync`
on demand. A stub `wandb` command on PATH records its arguments (the real one needs a server);
the runs are real offline W&B runs, written by a plain `wandb.init()` in a command payload."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ttlaunch.monitor.tracker_sync import SyncResult, scores_to_log, sync_round, training_dirs
from ttlaunch.records.jobs_file import JobKind, JobRecord
from ttlaunch.records.tracker_file import keep_tracker, read_tracker, wandb_run_dirs
from ttlaunch.scheduler.states import JobState

from support import TEST_CONFIGS, cli_invocation
from wandb_history import read_run

# A command payload that logs to W&B as anyone's code does: nothing of ttlaunch's in it.
TRAINER = "import wandb\nrun = wandb.init(project='ttlaunch_tests')\nrun.log({'loss': 0.5})\nrun.finish()\n"
SYNCS = "#!/bin/sh\necho \"$*\" >> \"$WANDB_STUB_LOG\"\nrun=\"${3##*-}\"\necho \"Syncing: https://wandb.ai/lab/ttlaunch_tests/runs/$run ... done.\"\n"
FAILS = "#!/bin/sh\necho \"$*\" >> \"$WANDB_STUB_LOG\"\necho 'wandb: ERROR api_key not configured (no-tty)' >&2\nexit 1\n"


def test_a_dir_is_synced_again_only_once_it_changed_and_a_runs_later_dirs_wait_for_a_failed_one(tmp_path: Path):
    run = keep_tracker(tmp_path / "r", "g", "r", {})
    old, new = (tmp_path / "r" / "wandb" / f"offline-run-20261207_{time}-{run.id}" for time in ("090000", "100000"))
    for path in (old, new):
        path.mkdir(parents=True)
        (path / f"run-{run.id}.wandb").write_bytes(b"12")
    asked: list[Path] = []

    def sync(run_dir: Path) -> SyncResult:
        asked.append(run_dir)
        return SyncResult(True, url="https://wandb.ai/lab/p/runs/x")

    training = {"r": tmp_path / "r"}
    first = sync_round(training, {}, sync=sync)
    assert asked == [old, new] and first.urls == {"r": "https://wandb.ai/lab/p/runs/x"} and not first.failures
    assert sync_round(training, first.synced, sync=sync).synced == {}, "nothing changed: nothing synced"
    (new / f"run-{run.id}.wandb").write_bytes(b"1234")
    again = sync_round(training, first.synced, sync=sync)
    assert asked[2:] == [new] and list(again.synced) == [new]

    failed = sync_round(training, {}, sync=lambda run_dir: SyncResult(False, problem="no network"))
    assert failed.failures == {"r": f"{old}: no network"} and failed.synced == {}


@pytest.mark.cli
def test_an_evaluations_scores_go_to_its_runs_wandb_run_once(tmp_path: Path, monkeypatch):
    """As summary values of an offline run of the same id beside the run's, which the next sync uploads."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = keep_tracker(tmp_path / "r8", "cap_4L", "r8", {})
    data = json.loads((tmp_path / "r8" / "tracker.json").read_text())
    data["wandb"] = {"project": "ttlaunch_tests", "entity": None, "last_step": 4, "dirs": []}
    (tmp_path / "r8" / "tracker.json").write_text(json.dumps(data))
    evaluation = JobRecord(
        name="r8/epoch1", run_name="r8", kind=JobKind.EVALUATION, status=JobState.COMPLETED, tasks=["capitalization", "qa"],
        job_dir=str(tmp_path / "r8" / "epoch1"), scores={
            "capitalization": {"metrics": {"match/accuracy": 0.75}, "samples": 4}, "qa": {"metrics": {"f1/mean": 0.5}},
        },
    )
    Path(evaluation.job_dir).mkdir(parents=True)
    control = JobRecord(  # a model this sweep did not train: no W&B run of ours
        name="base/model", run_name="base", kind=JobKind.EVALUATION, status=JobState.COMPLETED, tasks=["capitalization"],
        job_dir=str(tmp_path / "base"), scores={"capitalization": {"metrics": {"match/accuracy": 0.0}}},
    )
    jobs = {"r8": JobRecord(name="r8", run_name="r8", job_dir=str(tmp_path / "r8")), evaluation.name: evaluation, control.name: control}
    (order,) = scores_to_log(jobs)
    outcome = sync_round(training_dirs(jobs), {}, [order], sync=lambda run_dir: SyncResult(True))
    assert not outcome.failures, outcome.failures
    assert scores_to_log(jobs) == [], "added once"
    (added,) = wandb_run_dirs(tmp_path / "r8", run)
    scores = read_run(added)
    assert scores.id == run.id and scores.summary["eval/capitalization/epoch_1/match/accuracy"] == 0.75
    assert scores.summary["eval/qa/epoch_1/f1/mean"] == 0.5, "each task's of the one job"
    assert list(outcome.synced) == [added], "and synced"


def stub_wandb(tmp_path: Path, script: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "wandb").write_text(script)
    (bin_dir / "wandb").chmod(0o755)
    calls = tmp_path / "wandb_calls.txt"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("WANDB_STUB_LOG", str(calls))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    return calls


def launch(tmp_path: Path, *more: str) -> subprocess.CompletedProcess[str]:
    """Two runs, each a point with its own W&B run, launched on the local default."""
    tmp_path.mkdir(exist_ok=True)
    script = tmp_path / "train.py"
    script.write_text(TRAINER)
    command, env = cli_invocation(
        tmp_path, "--config-dir", TEST_CONFIGS, "experiment=trainer", "+seed=1,2", "payload=command",
        f"payload.command=[{sys.executable},{script},'{{seed}}']", "hydra.callbacks.monitor.live=off", *more, "--multirun",
    )
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.cli
def test_each_points_offline_run_is_synced_from_the_monitor_and_the_summary_names_its_page(tmp_path: Path, monkeypatch):
    pytest.importorskip("wandb")
    calls = stub_wandb(tmp_path, SYNCS, monkeypatch)
    result = launch(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "trainer"
    jobs = json.loads((sweep / "jobs.json").read_text())["jobs"]
    summary = (sweep / "summary.md").read_text()
    synced = calls.read_text().splitlines()
    for name, job in jobs.items():
        run = read_tracker(Path(job["job_dir"]))
        (run_dir,) = wandb_run_dirs(Path(job["job_dir"]), run)
        assert run_dir.parent == Path(job["job_dir"]) / "wandb", "WANDB_DIR: the job dir"
        assert synced.count(f"sync --include-synced {run_dir}") == 1, synced
        assert job["tracker_url"] == f"https://wandb.ai/lab/ttlaunch_tests/runs/{run.id}"
        assert f"- {name}: {job['tracker_url']}" in summary
    assert "### W&B runs" in summary

    on_demand = subprocess.run([sys.executable, "-m", "ttlaunch.sync", str(sweep)], capture_output=True, text=True, timeout=120)
    assert on_demand.returncode == 0, on_demand.stderr
    assert "2 of 2 offline W&B run dirs synced" in on_demand.stdout and len(calls.read_text().splitlines()) == 4


@pytest.mark.cli
def test_a_failing_sync_is_said_once_and_the_sweep_completes_and_sync_off_syncs_nothing(tmp_path: Path, monkeypatch):
    pytest.importorskip("wandb")
    calls = stub_wandb(tmp_path, FAILS, monkeypatch)
    result = launch(tmp_path, "hydra.callbacks.monitor.tracker_sync_every_s=0")
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "trainer"
    log = (sweep / "run-torchtune.log").read_text()
    assert log.count("TRACKER_SYNC: wandb sync failed") == 1 and "api_key not configured" in log
    assert len(calls.read_text().splitlines()) >= 2, "each round tried again"
    summary = (sweep / "summary.md").read_text()
    assert summary.count(", offline in `") == 2 and f"`ttlaunch sync {sweep}`" in summary

    calls.unlink()
    quiet = launch(tmp_path / "off", "tracker.sync=off")
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert not calls.exists(), "tracker.sync=off: no sync"
