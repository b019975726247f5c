"""vec-playbook's `mlp.single` (../shared/upstream/vec-playbook: the Hydra + submitit template
Vector's cluster users start from), switched to ttlaunch by its one launcher line, on the test
cluster: its own presets, jobs named by what was swept, losses read from its log by a
command-line regex, and a requeue from outside counted."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import REPO

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

UPSTREAM = REPO.parent / "shared" / "upstream" / "vec-playbook"
SUBMITIT_LINE = "override hydra/launcher: submitit_slurm"
# vec-playbook's trainer logs `Epoch 2: loss=1.0845 acc=39.70%` through Hydra's logging.
LOSS_PATTERN = r"Epoch (?P<step>\d+): loss=(?P<loss>[0-9.]+)"


@pytest.fixture
def vec_playbook(tmp_path: Path) -> Path:
    """A copy of vec-playbook's templates with the launcher line changed, nothing else."""
    if not UPSTREAM.is_dir():
        pytest.skip(f"{UPSTREAM} is not there")
    templates = tmp_path / "templates"
    shutil.copytree(UPSTREAM / "templates", templates)
    global_config = templates / "configs" / "_global.yaml"
    text = global_config.read_text()
    assert text.count(SUBMITIT_LINE) == 1
    global_config.write_text(text.replace(SUBMITIT_LINE, "override hydra/launcher: ttlaunch_slurm"))
    return templates


def test_vec_playbooks_app_switches_with_one_line_keeps_its_presets_and_is_measured(vec_playbook: Path, tmp_path: Path):
    work_root = tmp_path / "work"
    env = {**os.environ, "PYTHONPATH": f"{vec_playbook}{os.pathsep}{vec_playbook / 'src'}"}
    launch = subprocess.Popen(
        [
            sys.executable, "-m", "mlp.single.launch", "--multirun",
            # As its README says, on the test cluster: its own CPU preset, an account the cluster has.
            "compute=bon_echo/cpu_1x", "compute.mem_gb=1", "user.slurm.account=default", f"paths.work_root={work_root}",
            "trainer.num_epochs=300", "trainer.learning_rate=0.01,0.001",
            f"hydra.launcher.metrics.pattern='{LOSS_PATTERN}'",
            # Polls far apart: the requeue below happens, and the job ends, between two of them.
            "hydra.callbacks.monitor.poll_interval_s=90", "hydra.callbacks.monitor.live=off",
        ],
        cwd=vec_playbook, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    sweep = None
    while sweep is None or not list(sweep.glob("*/submitit/*_0_log.out")) or "Epoch 1:" not in _logs(sweep):
        assert time.monotonic() < deadline and launch.poll() is None, "no job started training"
        time.sleep(0.2)
        sweep = next((path for path in (work_root / "vec_jobs").glob("*") if (path / "jobs.json").is_file()), None)
    jobs = json.loads((sweep / "jobs.json").read_text())["jobs"]
    assert sorted(jobs) == ["trainer.learning_rate-0.001", "trainer.learning_rate-0.01"], "named by what was swept"
    requeued = next(job for job in jobs.values() if "Epoch 1:" in Path(job["stdout"]).read_text())
    subprocess.run(["scontrol", "requeue", requeued["job_id"]], check=True)

    _, stderr = launch.communicate(timeout=300)
    assert launch.returncode == 0, stderr[-3000:]
    jobs = json.loads((sweep / "jobs.json").read_text())["jobs"]
    assert {job["status"] for job in jobs.values()} == {"COMPLETED"}
    again = jobs[requeued["name"]]
    assert (again["attempt"], again["requeues"][0]["reason"]) == (2, "requeued by scontrol or the scheduler")
    runs = subprocess.run(
        ["sacct", "-D", "-X", "-P", "-n", "-j", again["job_id"], "--format=ElapsedRaw"], capture_output=True, text=True, check=True,
    ).stdout.split()
    assert len(runs) == 2 and again["elapsed_s"] == sum(map(int, runs)), "wall time of both runs"
    assert "Current: REQUEUED" in (sweep / "run-torchtune.log").read_text()

    # Its own preset (bon_echo/cpu_1x: 2 CPUs, 60 min, no partition), not ttlaunch's of that name.
    script = (Path(again["job_dir"]) / "submitit" / f"{again['job_id']}_submission.sh").read_text()
    assert "#SBATCH --cpus-per-task=2\n" in script and "#SBATCH --time=60\n" in script and "--partition" not in script
    # Its submitit_folder (${hydra.sweep.dir}/submitit_logs/%j) leads to each job's files.
    assert (sweep / "submitit_logs" / again["job_id"] / f"{again['job_id']}_0_log.out").is_file()
    # Losses from its log: in the records, the results table and the loss curves.
    assert all(job["training"]["loss"] is not None and job["training"]["steps_done"] == 299 for job in jobs.values())
    summary = (sweep / "summary.md").read_text()
    assert "| Run | trainer.learning_rate | Status | Final loss |" in summary
    assert (sweep / "loss_curves.png").is_file()


def _logs(sweep: Path) -> str:
    return "".join(path.read_text(errors="replace") for path in sweep.glob("*/submitit/*_0_log.out"))
