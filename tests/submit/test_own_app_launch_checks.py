"""The launch's pure checks (ttlaunch.submit.own_app_launch, sweep_launch), each on its own: what they refuse,
naming the field, and what they let through."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from ttlaunch.backend.local_jobs import LocalBackend
from ttlaunch.backend.slurm_jobs import SlurmBackend
from ttlaunch.base.errors import InputError
from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.inputs.schema import ComputeConfig, Executor
from ttlaunch.inputs.summary import Run, RunType
from ttlaunch.job.stagger import StartTogether
from ttlaunch.monitor.callback import MonitorCallback
from ttlaunch.records.status_table import HEADER
from ttlaunch.submit.own_app_launch import check_sort_key, check_status_table
from ttlaunch.submit.sweep_launch import check_monitoring, check_settings


def launcher(**settings: object) -> SimpleNamespace:
    return SimpleNamespace(**{"stagger": StartTogether(), "dry_run": False, "max_submitted": None, "executor": Executor.slurm, **settings})


def test_the_sort_key_is_a_measure_a_parameter_or_a_task():
    runs = [Run("r8", RunType.FINE_TUNED, {"lora_rank": 8})]
    for key in ("final_loss", "lora_rank", "capitalization"):
        check_sort_key(key, runs, ["capitalization"])
    with pytest.raises(InputError, match=r"report.sort_by: 'lr' is not a column of the results: one of final_loss, "):
        check_sort_key("lr", runs, [])


def test_a_local_job_is_one_task_on_one_node():
    inputs = SimpleNamespace(compute_source="compute=local/cpu", payload_kind=PayloadKind.command)
    LocalBackend().check_job(inputs, ComputeConfig(), ["train"])
    with pytest.raises(InputError, match=r"compute=local/cpu: compute.nodes: 2 node\(s\) x 1 task\(s\) need a SLURM preset"):
        LocalBackend().check_job(inputs, ComputeConfig(nodes=2), ["train"])
    with pytest.raises(InputError, match="compute.tasks_per_node"):
        LocalBackend().check_job(inputs, ComputeConfig(tasks_per_node=4), ["train"])
    SlurmBackend("tester").check_job(inputs, ComputeConfig(nodes=2, tasks_per_node=4), ["train"])


def test_a_status_table_with_an_edited_header_is_refused_and_none_is_fine(tmp_path: Path):
    check_status_table(None)
    check_status_table(tmp_path)  # no experiment_summary.md
    (tmp_path / "experiment_summary.md").write_text(f"## Fine-tuning\n\n| {' | '.join(HEADER)} |\n|---|\n")
    check_status_table(tmp_path)
    (tmp_path / "experiment_summary.md").write_text("## Fine-tuning\n\n| Run | Status | Job ID |\n|---|---|---|\n")
    with pytest.raises(InputError, match="line 3: the Fine-tuning status table's header reads"):
        check_status_table(tmp_path)


def test_settings_of_the_wrong_kind_are_one_line_before_anything_is_submitted():
    check_settings(launcher(), MonitorCallback())
    with pytest.raises(InputError, match="hydra.callbacks.monitor: poll_interval_s: expected a number of at least 0.1, got 0"):
        check_settings(launcher(), MonitorCallback(poll_interval_s=0))
    with pytest.raises(InputError, match="hydra.callbacks.monitor: live: expected auto, on or off, got 'maybe'"):
        check_settings(launcher(), MonitorCallback(live="maybe"))
    with pytest.raises(InputError, match="stagger: _target_: .* has no before_submit and startup_window"):
        check_settings(launcher(stagger=object()), None)
    with pytest.raises(InputError, match="hydra.launcher: dry_run: expected true or false, got 'yes'"):
        check_settings(launcher(dry_run="yes"), None)


def test_queue_caps_and_local_jobs_need_the_monitor():
    check_monitoring(launcher(), None)  # SLURM jobs run on unwatched
    with pytest.raises(InputError, match="max_submitted: needs the monitor to count queued jobs"):
        check_monitoring(launcher(max_submitted=4), None)
    with pytest.raises(InputError, match="hydra.callbacks: monitor: local jobs need the monitor"):
        check_monitoring(launcher(executor=Executor.local), None)
    check_monitoring(launcher(executor=Executor.local, max_submitted=4), MonitorCallback())
