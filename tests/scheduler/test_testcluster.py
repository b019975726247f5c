"""The project's single-node SLURM itself (scripts/testcluster.sh). Runs last: it restarts
the cluster."""

import os
import subprocess
from pathlib import Path

import pytest

from support import REPO, TEST_CONFIGS, wait_for

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.usefixtures("slurm_cluster"),
    pytest.mark.skipif(os.geteuid() != 0, reason="acts as another user and restarts daemons: needs root"),
]

SCRIPT = REPO / "scripts" / "testcluster.sh"
TEST_USER = os.environ.get("TTLAUNCH_TEST_USER", "ttltest")


def as_user(*argv: str, cwd: str = "/tmp") -> str:
    return subprocess.run(["runuser", "-u", TEST_USER, "--", *argv], capture_output=True, text=True, check=True, cwd=cwd).stdout


def test_every_command_works_for_an_unprivileged_user():
    job_id = as_user("sbatch", "--parsable", "--output=/dev/null", "--wrap", "sleep 2").strip()
    assert job_id in as_user("squeue", "-h", "-o", "%i", "-u", TEST_USER).split()
    wait_for(lambda: as_user("sacct", "-X", "-n", "-P", "-j", job_id, "--format=State").strip() == "COMPLETED", 60, "sacct")
    wait_for(lambda: "State: COMPLETED" in as_user("seff", job_id), 60, "seff")
    assert f"User/Group: {TEST_USER}/" in as_user("seff", job_id)
    long_job = as_user("sbatch", "--parsable", "--requeue", "--output=/dev/null", "--wrap", "sleep 60").strip()
    wait_for(lambda: as_user("squeue", "-h", "-o", "%T", "-j", long_job).strip() == "RUNNING", 30, "start")
    as_user("scontrol", "requeue", long_job)
    wait_for(lambda: "Restarts=1" in as_user("scontrol", "show", "job", long_job), 30, "requeue")
    as_user("scancel", long_job)


@pytest.fixture(scope="module")
def shared_python() -> str:
    """A Python every user can run, with this checkout of ttlaunch installed.

    Jobs run the submitting user's interpreter, and this repository's .venv points into
    /root (unreadable for others), so the other user gets a venv of Debian's python3.
    """
    venv = Path("/var/tmp/ttlaunch-shared-venv")
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--force-reinstall", "--no-cache-dir",
         "--no-deps", str(REPO)], check=True, capture_output=True,
    )
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(REPO)], check=True,
                   capture_output=True)
    subprocess.run(["chmod", "-R", "a+rX", str(venv)], check=True)
    return str(python)


def test_a_sweep_launched_by_an_unprivileged_user(shared_python: str):
    import shutil
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="ttlaunch-user-", dir="/tmp"))  # pytest's own tmp is root-only
    try:
        work.chmod(0o755)
        subprocess.run(["chown", TEST_USER, str(work)], check=True)
        config = work / "configs"
        shutil.copytree(Path(TEST_CONFIGS), config)
        as_user(
            shared_python, "-m", "ttlaunch.launch", "--config-dir", str(config), "experiment=probe_ok",
            "compute=testcluster/cpu_1x", "hydra.callbacks.monitor.poll_interval_s=1",
            f"paths.work_root={work}", cwd=str(work),
        )
        sweep = work / "ttlaunch_sweeps" / "probe_ok"
        assert (sweep / "ok_run" / "outputs" / "executor.txt").read_text() == "slurm"
        assert (sweep / "jobs.json").stat().st_uid == int(as_user("id", "-u"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_stop_ends_only_the_daemons_it_started_and_start_brings_them_back():
    # A process named like a daemon, not started by the script, must survive `stop`.
    decoy = subprocess.Popen(["bash", "-c", "exec -a slurmd sleep 300"])
    try:
        subprocess.run([str(SCRIPT), "stop"], check=True, capture_output=True, timeout=120)
        assert subprocess.run(["scontrol", "ping"], capture_output=True).returncode != 0
        assert decoy.poll() is None, "stop killed a process it did not start"
        status = subprocess.run([str(SCRIPT), "status"], capture_output=True, text=True)
        assert status.returncode != 0 and "slurmctld: stopped" in status.stdout
    finally:
        decoy.kill()
        subprocess.run([str(SCRIPT), "start"], check=True, capture_output=True, timeout=300)
    assert subprocess.run(["scontrol", "ping"], capture_output=True).returncode == 0
    assert subprocess.run([str(SCRIPT), "status"], capture_output=True).returncode == 0
