"""Submission bookkeeping and the monitor's reactions, on recorded scheduler answers."""

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

from hydra.core.utils import JobStatus

from ttlaunch.backend.job_requests import SubmissionSettings
from ttlaunch.backend.local_jobs import LocalBackend
from ttlaunch.inputs.launch_inputs import read_inputs
from ttlaunch.inputs.schema import Executor
from ttlaunch.job.job_callable import PrePickledJob
from ttlaunch.job.job_plan import load_plan
from ttlaunch.job.stagger import FixedDelay
from ttlaunch.monitor.settings import MonitorSettings
from ttlaunch.monitor.sweep_monitor import Monitor
from ttlaunch.records.jobs_file import JobRecord
from ttlaunch.records.ledger import Ledger
from ttlaunch.submit.submitter import Submitter, job_return, run_submission

from support import cluster_without_accounting


class RejectingBackend(LocalBackend):
    """A backend whose scheduler refuses one job; the others get a job id (no process starts)."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def submit(self, name, folder, request, job_callable, args):
        if name == "rank8_lr5e-5":
            raise RuntimeError("sbatch: error: invalid partition specified: nowhere")
        paths = SimpleNamespace(stdout=self.folder / "1_0_log.out", stderr=self.folder / "1_0_log.err")
        return SimpleNamespace(job_id=f"id-{name}", paths=paths, state="RUNNING")


def _submitter(ledger: Ledger, inputs, tmp_path: Path) -> Submitter:
    settings = SubmissionSettings(inputs.requeue, inputs.user, 120, inputs.compute_source)
    return Submitter(ledger, settings, RejectingBackend(tmp_path), PrePickledJob(print, None))


def test_a_rejected_submission_is_logged_and_the_others_still_go(compose_config, tmp_path: Path):
    cfg = compose_config("experiment=cap_4L")
    ledger = Ledger.open(tmp_path, "cap_4L")
    inputs = read_inputs(cfg, cfg.hydra)
    submitter = _submitter(ledger, inputs, tmp_path)
    names = ["rank8_lr1e-5", "rank8_lr5e-5", "rank16_lr1e-5"]
    planned = [run_submission(inputs, tmp_path, index, [f"run_name={name}", f"hydra.job.name={name}"]) for index, name in enumerate(names)]
    waits = []
    submitted = submitter.submit_all(planned, FixedDelay(seconds=5, sleep=waits.append))

    assert submitted == names
    assert [ledger.state.jobs[name].status for name in names] == ["PENDING", "SUBMIT_FAILED", "PENDING"]
    assert waits == [5, 5], "a wait between submissions, none before the first"
    log = (tmp_path / "run-torchtune.log").read_text()
    assert "SUBMIT_FAILED: rank8_lr5e-5\nError: sbatch: error: invalid partition specified: nowhere" in log
    assert "Summary: 2 jobs submitted successfully (1 failures)" in log
    assert ledger.state.jobs["rank16_lr1e-5"].output_dir == str(tmp_path / "rank16_lr1e-5" / "outputs")
    assert ledger.state.jobs["rank16_lr1e-5"].time_limit_s == 60 * cfg.compute.timeout_min
    on_disk = Ledger.existing(tmp_path).state.jobs
    assert on_disk["rank8_lr1e-5"].job_id == "id-rank8_lr1e-5", "each submission is in jobs.json"
    assert job_return(ledger.state.jobs["rank8_lr5e-5"]).status is JobStatus.FAILED
    assert job_return(ledger.state.jobs["rank8_lr1e-5"]).status is JobStatus.UNKNOWN


def test_a_resubmitted_run_keeps_its_earlier_job_ids(compose_config, tmp_path: Path):
    cfg = compose_config("experiment=cap_4L")
    ledger = Ledger.open(tmp_path, "cap_4L")
    ledger.state.jobs["rank8_lr1e-5"] = JobRecord(name="rank8_lr1e-5", job_id="7", status="FAILED", previous_job_ids=["3"])
    inputs = read_inputs(cfg, cfg.hydra)
    submitter = _submitter(ledger, inputs, tmp_path)
    planned = [run_submission(inputs, tmp_path, 0, ["run_name=rank8_lr1e-5", "hydra.job.name=rank8_lr1e-5"])]
    submitter.submit_all(planned, FixedDelay(seconds=0))
    record = ledger.state.jobs["rank8_lr1e-5"]
    assert (record.job_id, record.status, record.previous_job_ids) == ("id-rank8_lr1e-5", "PENDING", ["3", "7"])


def _slurm_ledger(tmp_path: Path, **record_fields) -> Ledger:
    ledger = Ledger.open(tmp_path, "cap_4L")
    ledger.state.executor = Executor.slurm
    ledger.state.jobs["rank8_lr1e-5"] = JobRecord(name="rank8_lr1e-5", job_id="42", **record_fields)
    return ledger


def test_repeated_poll_failures_are_logged_and_alerted_once(tmp_path: Path, monkeypatch):
    from ttlaunch.scheduler import slurm

    def unreachable(argv, timeout=60):
        raise slurm.SchedulerCommandError(argv, 1, "", "slurm_load_jobs error: Unable to contact slurm controller")

    monkeypatch.setattr(slurm, "execute", unreachable)
    monitor = Monitor(_slurm_ledger(tmp_path), MonitorSettings(poll_interval_s=1, alert_after_failures=3))
    for _ in range(4):
        assert monitor.poll() == 1  # nothing learnt, nothing lost
    log = (tmp_path / "run-torchtune.log").read_text()
    assert log.count("POLL_FAILED: Querying SLURM failed") == 4
    assert "Unable to contact slurm controller" in log and "Consecutive failures: 4" in log
    assert log.count("Alert: repeated failures") == 1


# `sacct -c` of a job in the job completion log (recorded on the test cluster).
COMPLETION_LOG = "42|rank8_lr1e-5|FAILED|1:0|2026-11-23T00:44:08|2026-11-23T00:44:09|2026-11-23T00:44:38|00:00:29\n"


def test_without_accounting_the_completion_log_answers_and_the_user_is_told_once(tmp_path: Path, monkeypatch):
    from ttlaunch.scheduler import slurm

    calls: list[list[str]] = []
    monkeypatch.setattr(slurm, "execute", cluster_without_accounting(COMPLETION_LOG, calls))
    ledger = _slurm_ledger(tmp_path, status="RUNNING", started="2026-11-23 00:44:09")
    ledger.state.jobs["other"] = JobRecord(name="other", job_id="43", status="RUNNING")
    monitor = Monitor(ledger, MonitorSettings(poll_interval_s=1))
    monitor.poll()
    monitor.poll()
    record = ledger.state.jobs["rank8_lr1e-5"]
    assert (record.status, record.exit_code, record.elapsed) == ("FAILED", "1:0", "29s")
    log = (tmp_path / "run-torchtune.log").read_text()
    assert log.count("accounting is disabled") == 1
    assert ["sacct", "-D"] in calls[:3] and calls.count(["sacct", "-D"]) == 1, "plain sacct is not asked again"
    assert not monitor.metrics.pending, "no seff without accounting"


def test_a_requeue_is_recorded_with_its_attempt_and_reason_and_the_job_is_not_finished(tmp_path: Path, monkeypatch):
    from ttlaunch.job.requeue import record_requeue
    from ttlaunch.scheduler import slurm

    answers = {"squeue": "42|PENDING|1|rank8_lr1e-5\n"}
    monkeypatch.setattr(slurm, "execute", lambda argv, timeout=60: answers[argv[0]])
    job_dir = tmp_path / "rank8_lr1e-5"
    job_dir.mkdir()
    ledger = _slurm_ledger(tmp_path, status="RUNNING", job_dir=str(job_dir))
    record_requeue(job_dir, 1, "timeout")  # what the job wrote before requeueing itself
    monitor = Monitor(ledger, MonitorSettings(poll_interval_s=1))
    assert monitor.poll() == 1
    record = ledger.state.jobs["rank8_lr1e-5"]
    assert (record.status, record.attempt) == ("PENDING", 2)
    assert [(entry["attempt"], entry["reason"]) for entry in record.requeues] == [(1, "timeout")]
    log = (tmp_path / "run-torchtune.log").read_text()
    assert "Previous: RUNNING\nCurrent: REQUEUED\nJob ID: 42\nAttempt: 2 (attempt 1 ended: timeout)" in log
    assert "Previous: REQUEUED\nCurrent: PENDING" in log

    # Requeued again from outside (scontrol requeue, a node failure): accounting says why.
    answers["squeue"] = "42|RUNNING|2|rank8_lr1e-5\n"
    answers["sacct"] = (
        "42|rank8_lr1e-5|REQUEUED|0:0|2026-11-23T01:00:00|2026-11-23T01:00:01|2026-11-23T01:00:09|00:00:08\n"
        "42|rank8_lr1e-5|NODE_FAIL|0:0|2026-11-23T01:00:00|2026-11-23T01:00:21|2026-11-23T01:00:30|00:00:09\n"
        "42|rank8_lr1e-5|RUNNING|0:0|2026-11-23T01:00:00|2026-11-23T01:00:41|Unknown|00:00:02\n"
    )
    monitor.poll()
    assert (record.status, record.attempt, record.requeues[-1]["reason"]) == ("RUNNING", 3, "node failure")
    assert Ledger.existing(tmp_path).state.jobs["rank8_lr1e-5"].attempt == 3, "in jobs.json"


def test_a_requeue_between_two_polls_is_counted_when_the_job_ends_and_its_runs_times_add_up(tmp_path: Path, monkeypatch):
    from ttlaunch.scheduler import slurm

    # `scontrol requeue` while the job ran, and it ended before the next poll: squeue never
    # showed the restart; accounting has both runs (recorded on the test cluster with sacct -D).
    history = (
        "42|hydra_mlp|REQUEUED|0:0|2026-12-05T18:40:00|2026-12-05T18:40:01|2026-12-05T18:40:06|00:00:05\n"
        "42|hydra_mlp|COMPLETED|0:0|2026-12-05T18:40:00|2026-12-05T18:40:18|2026-12-05T18:40:28|00:00:10\n"
    )
    answers = {"squeue": "", "sacct": history}
    monkeypatch.setattr(slurm, "execute", lambda argv, timeout=60: answers[argv[0]])
    ledger = _slurm_ledger(tmp_path, status="RUNNING", started="2026-12-05 18:40:01")
    monitor = Monitor(ledger, MonitorSettings(poll_interval_s=1))
    monitor.poll()
    record = ledger.state.jobs["rank8_lr1e-5"]
    assert (record.status, record.attempt, record.elapsed_s) == ("COMPLETED", 2, 15), "both runs, 5 s + 10 s"
    assert [(entry["attempt"], entry["reason"]) for entry in record.requeues] == [(1, "requeued by scontrol or the scheduler")]
    log = (tmp_path / "run-torchtune.log").read_text()
    assert log.index("Current: REQUEUED") < log.index("Previous: REQUEUED\nCurrent: COMPLETED"), "late, but in order"


def test_a_rules_follow_up_runs_from_the_copies_of_its_run_and_a_restart_keeps_them_and_its_spec(compose_config, tmp_path: Path):
    from ttlaunch.submit.submitter import SweepActions

    cfg = compose_config("experiment=cap_4L")
    ledger = Ledger.open(tmp_path / "sweep", "cap_4L")
    inputs = read_inputs(cfg, cfg.hydra)
    submitter = _submitter(ledger, inputs, tmp_path)
    config = tmp_path / "run.yaml"
    config.write_text("lr: 1e-3\n")
    planned = run_submission(inputs, tmp_path / "sweep", 0, ["run_name=rank8_lr1e-5", "hydra.job.name=rank8_lr1e-5"])
    planned.files = {"rank8_lr1e-5/run.yaml": config}
    submitter.submit_all([planned], FixedDelay(seconds=0))
    plan = load_plan(tmp_path / "sweep" / "rank8_lr1e-5")
    assert plan is not None and plan.command.output_dir == tmp_path / "sweep" / "rank8_lr1e-5" / "outputs"
    config.write_text("lr: 5e-3\n")  # edited after submission
    actions = SweepActions(submitter, inputs, {})
    actions.submit("rank8_lr1e-5_longer", "rank8_lr1e-5", "rank8_lr1e-5", ["+epochs=2"])
    actions.submit("rank8_lr1e-5", "rank8_lr1e-5", "rank8_lr1e-5", [])  # a restart, in its own dir
    for job in ("rank8_lr1e-5", "rank8_lr1e-5_longer"):
        assert (tmp_path / "sweep" / job / "inputs" / "rank8_lr1e-5" / "run.yaml").read_text() == "lr: 1e-3\n"
        assert load_plan(tmp_path / "sweep" / job) is None, "its overrides are its own: it works its plan out"
    restarted = ledger.state.jobs["rank8_lr1e-5"]
    assert restarted.submitted_with == planned.spec and restarted.submitted_with["parameters"]


def test_a_follow_up_asks_for_what_its_template_jobs_combination_asked_for(compose_config, tmp_path: Path):
    from ttlaunch.submit.submitter import SweepActions

    cfg = compose_config("experiment=cap_4L")
    (tmp_path / "sweep").mkdir()
    ledger = Ledger.open(tmp_path / "sweep", "cap_4L")
    inputs = read_inputs(cfg, cfg.hydra)
    longer = replace(inputs, compute=replace(inputs.compute, timeout_min=300))  # `compute.timeout_min=60,300`'s second
    submitter = _submitter(ledger, inputs, tmp_path)
    template = "rank8_lr1e-5__compute.timeout_min-300"
    submitter.overrides_by_name[template] = ["compute.timeout_min=300", "run_name=rank8_lr1e-5", f"hydra.job.name={template}"]
    actions = SweepActions(submitter, inputs, {("compute.timeout_min=300",): longer})
    actions.submit(f"{template}_cooldown", "rank8_lr1e-5", template, ["+lr=1e-6"])
    assert ledger.state.jobs[f"{template}_cooldown"].time_limit_s == 300 * 60 != 60 * inputs.compute.timeout_min


def test_a_file_that_vanished_before_submission_fails_that_submission_with_one_line(compose_config, tmp_path: Path):
    cfg = compose_config("experiment=cap_4L")
    ledger = Ledger.open(tmp_path / "sweep", "cap_4L")
    inputs = read_inputs(cfg, cfg.hydra)
    planned = run_submission(inputs, tmp_path / "sweep", 0, ["run_name=rank8_lr1e-5", "hydra.job.name=rank8_lr1e-5"])
    planned.files = {"rank8_lr1e-5/run.yaml": tmp_path / "run.yaml"}  # read at launch, deleted since
    _submitter(ledger, inputs, tmp_path).submit_all([planned], FixedDelay(seconds=0))
    record = ledger.state.jobs["rank8_lr1e-5"]
    assert record.status == "SUBMIT_FAILED" and record.job_id is None
    assert record.error == f"{tmp_path / 'run.yaml'}: rank8_lr1e-5/run.yaml: vanished before submission: the job would have nothing to read"


def test_every_later_submission_of_the_sweep_leaves_out_its_excluded_nodes_with_the_users_own(tmp_path: Path):
    from ttlaunch.backend.slurm_jobs import SlurmBackend
    from ttlaunch.inputs.schema import ComputeConfig, RequeueConfig, UserConfig
    from ttlaunch.records.jobs_file import SweepState
    from ttlaunch.submit.submitter import excluding

    state = SweepState(experiment="x", sweep_dir=str(tmp_path), excluded_nodes={"gpu07": "2999-01-01 00:00:00", "gpu01": "2000-01-01 00:00:00"})
    assert state.excluded_now() == ["gpu07"], "gpu01's time ran out"
    compute = excluding(ComputeConfig(partition="gpu", additional_parameters={"exclude": "gpu03"}), state.excluded_now())
    settings = SubmissionSettings(RequeueConfig(), UserConfig(), 120, "compute=k")
    parameters = SlurmBackend("tester").request("r", compute, settings).submitit_parameters()
    assert parameters["additional_parameters"]["exclude"] == "gpu03,gpu07"
