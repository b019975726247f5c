"""`python -m ttlaunch.launch` as a user runs it, on the local executor."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ttlaunch.launch import with_multirun

from support import TEST_CONFIGS, frames_of_ours

pytestmark = pytest.mark.cli


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        ("experiment:\n  name: x\nruns: [\n", "bad.yaml: line 4, column 1: malformed YAML"),
        ("experiment:\n  name: x\n", "bad.yaml: runs: missing"),
        ("experiment: {name: x}\nruns: [{name: a, type: trained}]\n", "bad.yaml: runs[0].type: unknown run type 'trained'"),
        ("experiment: {name: x}\nruns: [{name: ../x, type: fine-tuned}]\n", "bad.yaml: runs[0].name: '../x' is not a safe name"),
        ("experiment: {name: x}\nruns: [{name: 'a;rm', type: fine-tuned}]\n", "bad.yaml: runs[0].name: 'a;rm' is not a safe name"),
    ],
)
def test_bad_summary_one_line_exit_2_nothing_written(run_cli, tmp_path: Path, summary: str, expected: str):
    write(tmp_path / "cfg" / "experiment" / "bad.yaml", summary)
    result = run_cli("--config-dir", str(tmp_path / "cfg"), "experiment=bad", "--multirun")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("ttlaunch: error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["experiment=demo", "compute=nowhere/x"], "command line: compute=nowhere/x: no such option; compute options: "),
        (["experiment=demo", "requeue=maybe"], "command line: requeue=maybe: no such option; requeue options: off, on"),
        (["experiment=nope"], "command line: experiment=nope: no such option; experiment options: cap_4L, demo"),
        ([], "experiment: no experiment chosen"),
        (["experiment=demo", "+compute.memgb=3"], "compute=local/cpu: compute.memgb"),
        (["experiment=demo", "hydra.launcher.metrics.jsonl=m.jsonl"], "hydra.launcher: metrics: reads another Hydra app's"),
    ],
)
def test_bad_command_line_one_line_exit_2_nothing_written(run_cli, tmp_path: Path, args, expected):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("ttlaunch: error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert not (tmp_path / "work").exists()


def test_missing_scaffold_config_is_reported_before_anything_is_written(run_cli, tmp_path: Path):
    experiments = tmp_path / "experiments"
    write(
        experiments / "cap" / "experiment_summary.yaml",
        "experiment: {name: cap}\nruns:\n  - {name: r1, type: fine-tuned, parameters: {lora_rank: 4}}\n"
        "  - {name: r2, type: fine-tuned, parameters: {lora_rank: 8}}\n",
    )
    write(experiments / "cap" / "r1" / "finetune.yaml", "output_dir: out\n")
    result = run_cli(f"hydra.searchpath=[ttlaunch-experiments://{experiments}]", "experiment=cap")
    assert result.returncode == 2
    assert f"runs.r2: scaffolded experiment has no run config {experiments / 'cap' / 'r2' / 'finetune.yaml'}" in result.stderr
    assert not (tmp_path / "work").exists()


def test_with_multirun_adds_the_flag_unless_inspecting():
    assert with_multirun(["experiment=demo"]) == ["experiment=demo", "--multirun"]
    assert with_multirun(["experiment=demo", "-m"]) == ["experiment=demo", "-m"]
    assert with_multirun(["--cfg", "job"]) == ["--cfg", "job"]
    assert with_multirun(["--help"]) == ["--help"]


def test_without_multirun_the_runs_still_go_to_the_executor(run_cli, tmp_path: Path):
    result = run_cli("--config-dir", TEST_CONFIGS, "experiment=probe_ok")  # no --multirun
    assert result.returncode == 0, result.stderr
    assert "--multirun is implied" in result.stderr
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "probe_ok"
    # The payload ran in a submitit job, not in the launching process.
    assert (sweep / "ok_run" / "outputs" / "executor.txt").read_text() == "local"
    assert not (sweep / "ctrl").exists()


def test_a_failing_payload_fails_its_job_and_the_launch(run_cli, tmp_path: Path):
    result = run_cli("--config-dir", TEST_CONFIGS, "experiment=probe", "--multirun")
    assert result.returncode == 1
    assert "1 of 2 jobs did not complete: bad_run" in result.stderr
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "probe"
    state = json.loads((sweep / "jobs.json").read_text())
    assert {name: job["status"] for name, job in state["jobs"].items()} == {"ok_run": "COMPLETED", "bad_run": "FAILED"}
    log = (sweep / "run-torchtune.log").read_text()
    assert "STATE_CHANGE: bad_run\nPrevious: RUNNING\nCurrent: FAILED" in log or "Current: FAILED" in log
    assert "Summary: 2 jobs finished - 1 COMPLETED, 1 FAILED" in log
    # The job raised (so its process exited non-zero) rather than returning a failure.
    err = Path(state["jobs"]["bad_run"]["stderr"]).read_text()
    assert "PayloadFailed" in err and "exited with code 3" in err


def test_a_relaunch_never_resubmits_a_completed_run(run_cli, tmp_path: Path):
    assert run_cli("--config-dir", TEST_CONFIGS, "experiment=probe_ok").returncode == 0
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "probe_ok"
    first_id = json.loads((sweep / "jobs.json").read_text())["jobs"]["ok_run"]["job_id"]
    again = run_cli("--config-dir", TEST_CONFIGS, "experiment=probe_ok")
    assert again.returncode == 0
    assert json.loads((sweep / "jobs.json").read_text())["jobs"]["ok_run"]["job_id"] == first_id
    assert (sweep / "run-torchtune.log").read_text().count("SUBMIT_JOB: ok_run") == 1


def test_help_lists_experiments_and_presets_including_a_users_config_dir(run_cli):
    result = run_cli("--config-dir", TEST_CONFIGS, "--help")
    assert result.returncode == 0
    experiments = next(line for line in result.stdout.splitlines() if line.strip().startswith("experiment:"))
    assert {"cap_4L", "demo", "probe", "probe_ok"} <= set(experiments.split(":", 1)[1].split("[")[0].replace(",", " ").split())
    assert "killarney/h100_1x" in result.stdout and "bon_echo/a40_1x" in result.stdout
    assert "compute: " in result.stdout and "base," not in result.stdout
    monitoring = next(line for line in result.stdout.splitlines() if line.strip().startswith("monitoring:"))
    assert {"none", "auto_restart", "cooldown_single", "crash_restart"} <= set(monitoring.split(":", 1)[1].split("[")[0].replace(",", " ").split())


def test_a_preset_without_a_ttlaunch_launcher_is_refused(run_cli, tmp_path: Path):
    result = run_cli("experiment=demo", "compute=base")
    assert result.returncode == 2
    assert "compute=base: hydra/launcher: the preset must choose ttlaunch_local or ttlaunch_slurm" in result.stderr
    assert not (tmp_path / "work").exists()


def test_a_command_line_sweep_doubles_the_jobs_and_each_run_gets_its_value(run_cli, tmp_path: Path):
    record_seed = "payload.command=[sh,-c,'echo $0 > $1','{seed}','{output_dir}/seed.txt']"
    result = run_cli("--config-dir", TEST_CONFIGS, "experiment=probe_ok", "+seed=1,2", record_seed, "--multirun")
    assert result.returncode == 0, result.stderr
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "probe_ok"
    state = json.loads((sweep / "jobs.json").read_text())
    assert sorted(state["jobs"]) == ["ok_run__seed-1", "ok_run__seed-2"]
    assert "+seed=2" in (sweep / "ok_run__seed-2" / "hydra_configs" / "overrides.yaml").read_text()
    assert [(sweep / f"ok_run__seed-{n}" / "outputs" / "seed.txt").read_text() for n in (1, 2)] == ["1\n", "2\n"]


def test_a_command_line_parameter_no_payload_uses_is_refused_before_anything_is_written(run_cli, tmp_path: Path):
    result = run_cli("--config-dir", TEST_CONFIGS, "experiment=probe_ok", "+seed=1,2", "--multirun")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "ttlaunch: error: command line: +seed: payload.command has no {seed} placeholder: the runs would not see it"
    )
    assert not (tmp_path / "work").exists()
    result = run_cli("experiment=demo", "+colour=blue")
    assert result.returncode == 2
    assert "ttlaunch: error: command line: +colour: no torchtune key for 'colour'" in result.stderr


def start_local_launch(tmp_path: Path, command: list[str], started: str, payloads: int = 1) -> subprocess.Popen:
    """`command` (a local launch) in the background, once `payloads` processes run `started`."""
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    # In a process group of its own, as a terminal's foreground job is (see ctrl_c); started
    # in the background, it would inherit SIGINT ignored, and a terminal's is not.
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), process_group=0,
    )
    deadline = time.monotonic() + 60
    while subprocess.run(["pgrep", "-fc", f"^{started}"], capture_output=True, text=True).stdout.strip() != str(payloads):
        assert time.monotonic() < deadline, "the payloads never started"
        time.sleep(0.2)
    return process


def start_slow_local_sweep(tmp_path: Path, name: str, seconds: str) -> subprocess.Popen:
    """A local sweep of one run whose payload sleeps `seconds`, once that payload runs."""
    write(tmp_path / "cfg" / "experiment" / f"{name}.yaml", f"experiment: {{name: {name}}}\nruns: [{{name: s, type: fine-tuned}}]\n")
    command = [
        sys.executable, "-m", "ttlaunch.launch", "--config-dir", str(tmp_path / "cfg"), f"experiment={name}",
        "payload=command", f"payload.command=[sleep,'{seconds}']", f"paths.work_root={tmp_path / 'work'}",
    ]
    return start_local_launch(tmp_path, command, f"sleep {seconds}")


def ctrl_c(process: subprocess.Popen) -> None:
    """What a terminal does on Ctrl-C: SIGINT to every process of its foreground group."""
    os.killpg(process.pid, signal.SIGINT)


def payload_running(seconds: str) -> bool:
    return bool(subprocess.run(["pgrep", "-f", f"sleep {seconds}"], capture_output=True).stdout)


def test_ctrl_c_while_waiting_says_what_happened_without_a_traceback(tmp_path: Path):

    process = start_slow_local_sweep(tmp_path, "slow", "61.25")
    ctrl_c(process)
    _, stderr = process.communicate(timeout=90)
    assert process.returncode == 130
    assert stderr.strip().splitlines()[-1].startswith("ttlaunch: interrupted: stopped the local jobs of s (stopped, not failed)")
    # Neither ours nor submitit's local controller (which gets no Ctrl-C of its own) prints a traceback.
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert frames_of_ours(stderr) == [], stderr
    log = (tmp_path / "work" / "ttlaunch_sweeps" / "slow" / "run-torchtune.log").read_text()
    assert "Previous: RUNNING\nCurrent: CANCELLED" in log
    deadline = time.monotonic() + 10  # stopped with the job, not left to run its 61 s
    while payload_running("61.25"):
        assert time.monotonic() < deadline, "the local job's payload outlived the launcher"
        time.sleep(0.1)


def test_the_experiments_status_table_follows_the_jobs(run_cli, tmp_path: Path):
    experiment = tmp_path / "experiments" / "cap"
    summary_yaml = write(
        experiment / "experiment_summary.yaml",
        "experiment: {name: cap}\nruns:\n  - {name: ok_run, type: fine-tuned, code: 0}\n"
        "  - {name: bad_run, type: fine-tuned, code: 3}\n  - {name: base, type: control}\n",
    )
    yaml_before = summary_yaml.read_bytes()
    markdown = write(
        experiment / "experiment_summary.md",
        "# cap\n\n## Fine-tuning\n\n| Run Name | Status | Job ID | Started | Completed | Notes |\n"
        "|---|---|---|---|---|---|\n| ok_run | - | - | - | - | - |\n| bad_run | - | - | - | - | - |\n"
        "| base | - | - | - | - | control |\n\nMy notes.\n",
    )
    result = run_cli(
        "--config-dir", TEST_CONFIGS, f"hydra.searchpath=[ttlaunch-experiments://{tmp_path / 'experiments'}]",
        "experiment=cap", "payload=probe",
    )
    assert result.returncode == 1
    state = json.loads((tmp_path / "work" / "ttlaunch_sweeps" / "cap" / "jobs.json").read_text())["jobs"]
    table = markdown.read_text()
    ok, bad = state["ok_run"], state["bad_run"]
    assert f"| ok_run | COMPLETED | {ok['job_id']} | {ok['started']} | {ok['completed']} | - |" in table
    assert f"| bad_run | FAILED | {bad['job_id']} |" in table
    assert "| base | - | - | - | - | control |" in table and table.endswith("My notes.\n")
    assert summary_yaml.read_bytes() == yaml_before


def test_a_sweep_dir_deleted_while_monitoring_ends_in_one_line_and_stops_local_jobs(tmp_path: Path):

    process = start_slow_local_sweep(tmp_path, "slow2", "62.5")
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "slow2"
    shutil.rmtree(sweep)
    _, stderr = process.communicate(timeout=90)
    assert process.returncode == 1, stderr[-3000:]
    assert f"ttlaunch: monitoring stopped: the sweep dir {sweep} is gone." in stderr
    assert f"python -m ttlaunch.status {sweep} --follow" in stderr
    assert frames_of_ours(stderr) == [], stderr
    deadline = time.monotonic() + 10
    while payload_running("62.5"):
        assert time.monotonic() < deadline, "the local job's payload outlived the launcher"
        time.sleep(0.2)


def test_a_run_changed_since_its_submission_is_named_and_not_counted_as_done(run_cli, tmp_path: Path):
    summary = write(
        tmp_path / "cfg" / "experiment" / "edited.yaml",
        "experiment: {name: edited}\nruns:\n  - {name: a, type: fine-tuned, lr: 0.1}\n  - {name: b, type: fine-tuned, lr: 0.2}\n",
    )
    args = ("--config-dir", str(tmp_path / "cfg"), "experiment=edited", "payload=command",
            "payload.command=[sh,-c,'echo $0 >> $1','{lr}','{output_dir}/lr.txt']")
    assert run_cli(*args).returncode == 0
    summary.write_text(summary.read_text().replace("lr: 0.1", "lr: 0.3"))
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "edited"
    log_before = (sweep / "run-torchtune.log").read_text()

    refused = run_cli(*args)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == (
        f"ttlaunch: error: {sweep / 'jobs.json'}: changed runs: changed since they were submitted: a (lr: 0.1 -> 0.3). "
        "Add resubmit_changed=true to train them again with the new values (their earlier jobs stay recorded), "
        "or undo the change"
    )
    assert (sweep / "run-torchtune.log").read_text() == log_before, "nothing written"

    again = run_cli(*args, "resubmit_changed=true")
    assert again.returncode == 0, again.stderr
    assert (sweep / "a" / "outputs" / "lr.txt").read_text() == "0.1\n0.3\n"
    assert (sweep / "b" / "outputs" / "lr.txt").read_text() == "0.2\n", "the unchanged run is not trained again"
    jobs = json.loads((sweep / "jobs.json").read_text())["jobs"]
    assert jobs["a"]["submitted_with"]["parameters"] == {"lr": 0.3} and len(jobs["a"]["previous_job_ids"]) == 1
    assert "1 changed and submitted again" in (sweep / "run-torchtune.log").read_text()
    assert run_cli(*args).returncode == 0, "now it matches"


def test_a_local_torchtune_run_without_its_model_is_refused_before_anything_is_written(run_cli, tmp_path: Path):
    result = run_cli("experiment=cap_4L", 'payload.overrides=["checkpointer.checkpoint_dir=/nonexistent/Llama"]')
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "ttlaunch: error: payload=torchtune: checkpointer.checkpoint_dir: /nonexistent/Llama does not exist: "
        "llama3_2/1B_lora_single_device trains from the model there."
    )
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize(
    ("choice", "suggestion"),
    [("compute=local/cpux", "compute=local/cpu"), ("compute=killarny/h100_1x", "compute=killarney/h100_1x"),
     ("monitoring=auto_restar", "monitoring=auto_restart")],
)
def test_a_misspelt_option_gets_the_real_options_and_the_closest_one(run_cli, tmp_path: Path, choice, suggestion):
    result = run_cli("experiment=demo", choice)
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"ttlaunch: error: command line: {choice}: no such option; did you mean {suggestion}? ")
    if choice.startswith("compute"):
        assert "local/cpu, testcluster/cpu_1x" in line and "killarney/h100_1x" in line and "base" not in line
    assert not (tmp_path / "work").exists()


def test_one_command_its_version_and_what_each_preset_reserves(tmp_path: Path):
    ttlaunch = Path(sys.executable).parent / "ttlaunch"
    for command in ([str(ttlaunch)], [sys.executable, "-m", "ttlaunch"], [sys.executable, "-m", "ttlaunch.launch"]):
        version = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60)
        assert (version.returncode, version.stdout) == (0, "ttlaunch 0.1.0\n"), version.stderr
    help_text = subprocess.run([str(ttlaunch), "launch", "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "    bon_echo/a40_4x     4 x a40 GPU, 32 CPUs, 160 GB, 8 h\n" in help_text
    assert "    testcluster/cpu_1x  no GPU, 1 CPU, 1 GB, 10 min\n" in help_text
    status = subprocess.run([str(ttlaunch), "status", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert status.returncode == 2 and f"is {tmp_path} a ttlaunch sweep dir?" in status.stderr
    wrong = subprocess.run([str(ttlaunch), "lanch"], capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "unknown command 'lanch'" in wrong.stderr


def test_the_exit_code_speaks_for_the_whole_sweep_also_when_nothing_was_submitted(run_cli, tmp_path: Path):
    first = run_cli("--config-dir", TEST_CONFIGS, "experiment=probe")
    assert first.returncode == 1 and "1 of 2 jobs did not complete: bad_run" in first.stderr
    # Why it failed is in front of the user: jobs.json, summary.md and the status table.
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "probe"
    bad_run = json.loads((sweep / "jobs.json").read_text())["jobs"]["bad_run"]
    reason = bad_run["error"]
    assert reason.startswith("payload exited with code 3") and bad_run["exit_code"] == "3:0"
    summary = (sweep / "summary.md").read_text()
    assert "bad_run (Job " in summary and f"FAILED ({bad_run['cause']}): {reason}" in summary
    status = subprocess.run([sys.executable, "-m", "ttlaunch.status", str(sweep)], capture_output=True, text=True, timeout=60)
    assert "payload exited with code 3" in status.stdout
    again = run_cli("--config-dir", TEST_CONFIGS, "experiment=probe")
    assert "nothing to submit or watch" in again.stdout + again.stderr
    assert again.returncode == 1, "bad_run still has not completed"
    assert again.stderr.strip().splitlines()[-1].startswith("ttlaunch: 1 of 2 jobs did not complete: bad_run; see ")


def test_ctrl_c_then_the_same_command_finishes_the_sweep(tmp_path: Path):
    write(
        tmp_path / "cfg" / "experiment" / "two.yaml",
        "experiment: {name: two}\nruns:\n  - {name: a, type: fine-tuned}\n  - {name: b, type: fine-tuned}\n",
    )
    # Sleeps the first time; resumed, it has nothing left to do.
    record = 'echo resume=$TTLAUNCH_RESUME >> $0/starts.txt; [ "$TTLAUNCH_RESUME" = 1 ] || exec sleep 63.75'
    command = [
        sys.executable, "-m", "ttlaunch.launch", "--config-dir", str(tmp_path / "cfg"), "experiment=two",
        "payload=command", f"payload.command=[sh,-c,'{record}','{{output_dir}}']", f"paths.work_root={tmp_path / 'work'}",
    ]
    process = start_local_launch(tmp_path, command, "sleep 63.75", payloads=2)
    ctrl_c(process)
    _, stderr = process.communicate(timeout=90)
    assert process.returncode == 130
    assert stderr.strip().splitlines()[-1] == (
        "ttlaunch: interrupted: stopped the local jobs of a, b (stopped, not failed). "
        "The same command again resumes a, b from what they saved."
    )
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "two"
    jobs = json.loads((sweep / "jobs.json").read_text())["jobs"]
    assert {name: job["status"] for name, job in jobs.items()} == {"a": "COMPLETED", "b": "COMPLETED"}
    for run in ("a", "b"):
        assert (sweep / run / "outputs" / "starts.txt").read_text() == "resume=0\nresume=1\n"
    assert "2 stopped by ttlaunch and resumed" in (sweep / "run-torchtune.log").read_text()


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("stagger=fixed_delay stagger.seconds=abc", "stagger: seconds: expected a number of at least 0, got 'abc'"),
        ("stagger=fixed_delay stagger.seconds=-1", "stagger: seconds: expected a number of at least 0, got -1"),
        ("hydra.callbacks.monitor.poll_interval_s=abc", "Error merging override hydra.callbacks.monitor.poll_interval_s=abc (Value 'abc' of type 'str' could not be converted to Float)"),
        ("hydra.callbacks.monitor.alert_after_failures=0", "hydra.callbacks.monitor: alert_after_failures: expected a number of at least 1"),
        ("hydra.launcher.executor=slurmm", "Error merging override hydra.launcher.executor=slurmm (Invalid value 'slurmm', expected one of [local, slurm])"),
        ("hydra.launcher.relaunch=again", "Error merging override hydra.launcher.relaunch=again (Invalid value 'again', expected one of [rerun, resume])"),
        ("payload.kind=tune", "payload=probe: payload.kind: Invalid value 'tune', expected one of [torchtune, command, app, evaluation]"),
        ("payload.kind=app", "payload=probe: payload.kind: 'app' is ttlaunch's own kind: expected torchtune or command"),
        ("report.sort_by=nope", "ttlaunch.yaml: report.sort_by: 'nope' is not a column of the results: one of final_loss,"),
    ],
)
def test_the_launchers_own_settings_are_checked_before_anything_is_submitted(run_cli, tmp_path: Path, setting, expected):
    result = run_cli("--config-dir", TEST_CONFIGS, "experiment=probe_ok", *setting.split())
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith(f"ttlaunch: error: {expected}")
    assert frames_of_ours(result.stderr) == [] and "Traceback" not in result.stderr
    assert not (tmp_path / "work").exists(), "nothing submitted or written"


def test_a_summary_without_fine_tuned_runs_is_an_error_and_leaves_no_sweep_dir(run_cli, tmp_path: Path):
    write(tmp_path / "cfg" / "experiment" / "none.yaml", "experiment: {name: none}\nruns:\n  - {name: c, type: control}\n")
    result = run_cli("--config-dir", str(tmp_path / "cfg"), "experiment=none")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith("none.yaml: runs: no fine-tuned run to train (only control runs)")
    assert not (tmp_path / "work").exists()


def test_a_killed_launch_stops_its_local_jobs_as_ctrl_c_does(tmp_path: Path):
    process = start_slow_local_sweep(tmp_path, "killed", "64.5")
    process.terminate()  # `kill <launcher pid>`; a closed terminal's SIGHUP goes the same way
    _, stderr = process.communicate(timeout=90)
    assert process.returncode == 130, stderr[-3000:]
    assert "ttlaunch: interrupted: stopped the local jobs of s (stopped, not failed)" in stderr
    assert "Traceback" not in stderr, stderr
    assert not payload_running("64.5"), "the local job's payload outlived the launcher"
    job = json.loads((tmp_path / "work" / "ttlaunch_sweeps" / "killed" / "jobs.json").read_text())["jobs"]["s"]
    assert job["status"] == "CANCELLED" and job["stopped_by_ttlaunch"] is True


def test_a_local_job_started_when_it_was_submitted_not_at_the_next_poll(run_cli, tmp_path: Path):
    write(
        tmp_path / "cfg" / "experiment" / "quick.yaml",
        "experiment: {name: quick}\nruns:\n  - {name: a, type: fine-tuned}\n  - {name: b, type: fine-tuned}\n",
    )
    # The launcher waits 3 s before submitting b: a's first poll comes after a ended.
    result = run_cli(
        "--config-dir", str(tmp_path / "cfg"), "experiment=quick", "stagger=fixed_delay", "stagger.seconds=3",
        "payload=command", "payload.command=[sleep,'0.5']",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = json.loads((tmp_path / "work" / "ttlaunch_sweeps" / "quick" / "jobs.json").read_text())["jobs"]
    assert [(job["started"], job["status"]) for job in jobs.values()] == [(job["submitted"], "COMPLETED") for job in jobs.values()]


def test_status_during_submission_counts_the_runs_not_yet_submitted(tmp_path: Path):
    write(
        tmp_path / "cfg" / "experiment" / "capped.yaml",
        "experiment: {name: capped}\nruns:\n  - {name: a, type: fine-tuned}\n  - {name: b, type: fine-tuned}\n",
    )
    gate = tmp_path / "go"
    wait = f"while [ ! -e {gate} ]; do sleep 0.1; done"
    command = [
        sys.executable, "-m", "ttlaunch.launch", "--config-dir", str(tmp_path / "cfg"), "experiment=capped",
        "payload=command", f"payload.command=[sh,-c,'{wait}']", "hydra.launcher.max_submitted=1",
        f"paths.work_root={tmp_path / 'work'}",
    ]
    process = start_local_launch(tmp_path, command, f"sh -c while \\[ ! -e {gate} \\]")
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "capped"
    status = subprocess.run([sys.executable, "-m", "ttlaunch.status", str(sweep)], capture_output=True, text=True, timeout=60)
    gate.touch()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    counts, _, *rows = status.stdout.splitlines()
    # a: PENDING or RUNNING, as the launcher's last poll saw it; b waits for room in the queue.
    assert counts in ("capped: 2 jobs - 1 NOT SUBMITTED, 1 RUNNING", "capped: 2 jobs - 1 NOT SUBMITTED, 1 PENDING"), status.stdout
    assert rows[0].split()[0] == "a" and rows[1].split()[:3] == ["b", "NOT", "SUBMITTED"], status.stdout
    assert json.loads((sweep / "jobs.json").read_text())["unsubmitted"] == []


def test_a_damaged_state_file_is_one_line_and_rebuild_then_relaunch_finishes_the_sweep(run_cli, tmp_path: Path):
    write(
        tmp_path / "cfg" / "experiment" / "cut.yaml",
        "experiment: {name: cut}\nruns:\n  - {name: a, type: fine-tuned}\n  - {name: b, type: fine-tuned}\n",
    )
    args = ["--config-dir", str(tmp_path / "cfg"), "experiment=cut", "payload=command", "payload.command=[sleep,'0.1']"]
    assert run_cli(*args).returncode == 0
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "cut"
    state = sweep / "jobs.json"
    state.write_text(state.read_text()[:100])  # an editor, a full quota, an interrupted copy
    log_before = (sweep / "run-torchtune.log").read_text()

    refused = run_cli(*args)
    assert refused.returncode == 2
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ttlaunch: error: {state}: not valid JSON (line "), refused.stderr
    assert last.endswith(
        f"Rebuild it from the event log, the job dirs and the scheduler: `ttlaunch status {sweep} --rebuild` "
        "(the damaged file is kept beside it)"
    ), refused.stderr
    assert (sweep / "run-torchtune.log").read_text() == log_before, "nothing is done with a damaged state"
    status = subprocess.run([sys.executable, "-m", "ttlaunch", "status", str(sweep)], capture_output=True, text=True)
    assert status.returncode == 2 and f"ttlaunch: error: {state}: not valid JSON" in status.stderr

    rebuilt = subprocess.run([sys.executable, "-m", "ttlaunch", "status", str(sweep), "--rebuild"], capture_output=True, text=True)
    assert rebuilt.returncode == 0, rebuilt.stderr
    damaged = [path.name for path in sweep.iterdir() if path.name.startswith("jobs.json.damaged-")]
    assert len(damaged) == 1 and f"kept the damaged jobs.json as {sweep / damaged[0]}" in rebuilt.stderr
    assert rebuilt.stdout.splitlines()[0] == "cut: 2 jobs - 2 COMPLETED"

    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 jobs ready to submit (2 already completed" in (sweep / "run-torchtune.log").read_text()
    assert (sweep / "run-torchtune.log").read_text().count("SUBMIT_JOB: ") == 2


def test_a_status_table_whose_header_was_edited_stops_the_launch_before_anything_is_written(run_cli, tmp_path: Path):
    experiment = tmp_path / "experiments" / "cap"
    write(experiment / "experiment_summary.yaml", "experiment: {name: cap}\nruns:\n  - {name: ok_run, type: fine-tuned, code: 0}\n")
    markdown = write(
        experiment / "experiment_summary.md",
        "# cap\n\n## Fine-tuning\n\n| Run Name | State | Job ID | Started | Completed | Notes |\n|---|---|---|---|---|---|\n",
    )
    result = run_cli(
        "--config-dir", TEST_CONFIGS, f"hydra.searchpath=[ttlaunch-experiments://{tmp_path / 'experiments'}]",
        "experiment=cap", "payload=probe",
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"ttlaunch: error: {markdown}: line 5: the Fine-tuning status table's header reads "
        "| Run Name | State | Job ID | Started | Completed | Notes |; ttlaunch updates the table whose header is "
        "| Run Name | Status | Job ID | Started | Completed | Notes |: restore that header, or remove the table"
    )
    assert not (tmp_path / "work").exists()


def test_each_launch_appends_its_provenance_and_the_summary_names_the_commit(run_cli, tmp_path: Path):
    assert run_cli("--config-dir", TEST_CONFIGS, "experiment=probe_ok").returncode == 0
    assert run_cli("--config-dir", TEST_CONFIGS, "experiment=probe_ok", "hydra.callbacks.monitor.poll_interval_s=0.5").returncode == 0
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "probe_ok"
    launches = json.loads((sweep / "provenance.json").read_text())["launches"]
    assert [entry["launch"] for entry in launches] == [1, 2]
    assert "hydra.callbacks.monitor.poll_interval_s=0.5" in launches[1]["command_line"]
    assert "poll_interval_s: 0.5" in launches[1]["config"] and "poll_interval_s: 0.5" not in launches[0]["config"]
    assert launches[1]["libraries"]["hydra-core"] and Path(launches[1]["packages"]).is_file()
    tree = launches[1]["git"]["experiment"]
    assert tree["directory"] == str(Path(TEST_CONFIGS) / "experiment")
    if tree["commit"] is not None:  # a clone of the repository: the commit of its test configs
        assert f"at {tree['commit'][:12]}" in (sweep / "summary.md").read_text()
    else:
        assert tree["note"] == "not in a git repository"
