"""Submission bookkeeping: one entry per job, in order, a rejected submission included."""

from pathlib import Path
from types import SimpleNamespace

from hydra.core.utils import JobStatus

from ttlaunch.composed import read_inputs
from ttlaunch.launching import SweepRun, job_returns
from ttlaunch.stagger import FixedDelay
from ttlaunch.states import JobState


class RejectingExecutor:
    """Stands in for a submitit executor whose scheduler refuses one job."""

    def __init__(self, name: str, folder: Path) -> None:
        self.name, self.folder = name, folder

    def submit(self, *args):
        if self.name == "rank8_lr5e-5":
            raise RuntimeError("sbatch: error: invalid partition specified: nowhere")
        paths = SimpleNamespace(stdout=self.folder / "1_0_log.out", stderr=self.folder / "1_0_log.err")
        return SimpleNamespace(job_id=f"id-{self.name}", paths=paths, state="RUNNING")


def test_a_rejected_submission_is_logged_and_the_others_still_go(compose_config, tmp_path: Path, monkeypatch):
    cfg = compose_config("experiment=cap_4L")
    run = SweepRun(tmp_path, read_inputs(cfg, cfg.hydra), "local", 120)
    monkeypatch.setattr(run, "_executor", lambda name, run_name: RejectingExecutor(name, tmp_path))
    names = ["rank8_lr1e-5", "rank8_lr5e-5", "rank16_lr1e-5"]
    overrides = [[f"run_name={name}", f"hydra.job.name={name}"] for name in names]
    waits = []
    tracked = run.submit_all(object(), overrides, 0, FixedDelay(seconds=5, sleep=waits.append))

    assert [item.name for item in tracked] == names
    assert [item.state for item in tracked] == [JobState.PENDING, JobState.SUBMIT_FAILED, JobState.PENDING]
    assert waits == [5, 5], "a wait between submissions, none before the first"
    log = (tmp_path / "run-torchtune.log").read_text()
    assert "SUBMIT_FAILED: rank8_lr5e-5\nError: sbatch: error: invalid partition specified: nowhere" in log
    assert "Summary: 2 jobs submitted successfully (1 failures)" in log
    assert run.state.jobs["rank8_lr5e-5"].status == "SUBMIT_FAILED"
    assert run.state.jobs["rank16_lr1e-5"].output_dir == str(tmp_path / "rank16_lr1e-5" / "outputs")
    returns = job_returns([tracked[1]])
    assert returns[0].status is JobStatus.FAILED


def test_repeated_poll_failures_are_logged_and_alerted_once(compose_config, tmp_path: Path, monkeypatch):
    from ttlaunch import slurm
    from ttlaunch.launching import Tracked

    def unreachable(argv, timeout=60):
        raise slurm.SchedulerCommandError(argv, 1, "", "slurm_load_jobs error: Unable to contact slurm controller")

    monkeypatch.setattr(slurm, "run", unreachable)
    cfg = compose_config("experiment=cap_4L")
    run = SweepRun(tmp_path, read_inputs(cfg, cfg.hydra), "slurm", 120, alert_after_failures=3)
    job = SimpleNamespace(job_id="42")
    tracked = [Tracked(name="rank8_lr1e-5", job=job)]
    for _ in range(4):
        assert run.poll(tracked) == tracked  # nothing learnt, nothing lost
    log = (tmp_path / "run-torchtune.log").read_text()
    assert log.count("POLL_FAILED: Querying SLURM failed") == 4
    assert "Unable to contact slurm controller" in log and "Consecutive failures: 4" in log
    assert log.count("Alert: repeated failures") == 1
