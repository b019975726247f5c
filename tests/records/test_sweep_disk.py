"""A sweep dir that cannot be written (read-only, full): said in one line before anything is
submitted; and a disk that fills up while jobs run costs no state change.

Each test mounts a small tmpfs as the work root (root only; skipped where mounting is not
allowed)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.cli


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 8 MiB tmpfs at tmp_path/work; `remount(options)` changes it (e.g. "ro")."""
    work = tmp_path / "work"
    work.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(work)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")

    def remount(options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(work)], check=True)

    try:
        yield work, remount
    finally:
        subprocess.run(["umount", "-l", str(work)], check=False)


def fill(path: Path) -> None:
    subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=64k"], capture_output=True)


def experiment(tmp_path: Path, name: str, runs: int = 1) -> list[str]:
    config = tmp_path / "cfg" / "experiment" / f"{name}.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    listed = "".join(f"  - {{name: r{index}, type: fine-tuned}}\n" for index in range(runs))
    config.write_text(f"experiment: {{name: {name}}}\nruns:\n{listed}")
    return [sys.executable, "-m", "ttlaunch.launch", "--config-dir", str(tmp_path / "cfg"), f"experiment={name}",
            "payload=command", "payload.command=[sleep,'1']", f"paths.work_root={tmp_path / 'work'}"]


def launch(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_a_read_only_work_root_is_one_line_and_nothing_is_submitted(tmp_path: Path, small_disk):
    work, remount = small_disk
    remount("ro")
    result = launch(experiment(tmp_path, "ro"), tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"ttlaunch: error: {work / 'ttlaunch_sweeps'}: cannot be written: Read-only file system (errno 30); nothing was submitted"
    )
    assert "Traceback" not in result.stderr


def test_a_full_sweep_dir_is_found_before_the_first_submission(tmp_path: Path, small_disk):
    work, _ = small_disk
    command = experiment(tmp_path, "full")
    (work / "ttlaunch_sweeps" / "full").mkdir(parents=True)
    fill(work / "filler")
    result = launch(command, tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ttlaunch: error: {work / 'ttlaunch_sweeps' / 'full'}")
    assert last.endswith(": cannot be written: No space left on device (errno 28); nothing was submitted")
    assert not list((work / "ttlaunch_sweeps" / "full").glob("*/submitit"))


def test_a_disk_that_fills_while_jobs_run_loses_no_state_change(tmp_path: Path, small_disk):
    work, _ = small_disk
    command = experiment(tmp_path, "filling") + ["hydra.callbacks.monitor.poll_interval_s=5"]
    sweep = work / "ttlaunch_sweeps" / "filling"
    output_path = tmp_path / "output.txt"  # log lines go to stdout, ttlaunch's own lines to stderr
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    with output_path.open("w") as output:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=output, stderr=output, text=True)
        deadline = time.monotonic() + 60
        while not list(sweep.glob("r0/submitit/*_result.pkl")):  # the job ended; the monitor has not looked yet
            assert time.monotonic() < deadline and process.poll() is None, output_path.read_text()[-3000:]
            time.sleep(0.1)
        fill(work / "filler")
        while "cannot record in" not in output_path.read_text():
            assert time.monotonic() < deadline and process.poll() is None, output_path.read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(6)  # a poll more, still full
        (work / "filler").unlink()
        process.wait(timeout=60)
    said = output_path.read_text()
    assert process.returncode == 0, said[-3000:]
    assert said.count("cannot record in") == 1 and "recording again in" in said, said
    job = json.loads((sweep / "jobs.json").read_text())["jobs"]["r0"]
    assert job["status"] == "COMPLETED"
    log = (sweep / "run-torchtune.log").read_text()
    assert log.count("Current: COMPLETED") == 1
    assert "POLL_FAILED: Could not record\nError: No space left on device (errno 28)" in log
    assert "ALL_COMPLETE" in log and (sweep / "summary.md").is_file()
