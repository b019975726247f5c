"""Training progress from what payloads write, on output recorded from the demo's torchtune
runs (its metric log and the progress bar on its stderr), and from a command's own formats."""

import json
import re
from pathlib import Path

from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.monitor.poll_failures import Containment
from ttlaunch.monitor.training import TrainingWatch
from ttlaunch.monitor.training_log import curve, jsonl_point, pattern_point, steps_per_epoch, torchtune_point
from ttlaunch.records.jobs_file import STATE_FILE_NAME, JobRecord, load_state
from ttlaunch.records.ledger import Ledger
from ttlaunch.scheduler.states import JobState

# outputs/logs/log_<time>.txt of the demo's rank8 run (2 epochs of 3 steps).
METRIC_LOG = """\
Step 1 | loss:6.584708213806152 lr:0.0003 tokens_per_second_per_gpu:6.5474443435668945 
Step 2 | loss:5.992371082305908 lr:0.0002713525491562421 tokens_per_second_per_gpu:7.894251346588135 
Step 3 | loss:6.6060285568237305 lr:0.0001963525491562421 tokens_per_second_per_gpu:6.055389404296875 
Step 4 | loss:6.506674289703369 lr:0.0001036474508437579 tokens_per_second_per_gpu:6.075718879699707 
Step 5 | loss:6.2772603034973145 lr:2.8647450843757897e-05 tokens_per_second_per_gpu:143.456787109375 
Step 6 | loss:6.565833568572998 lr:0.0 tokens_per_second_per_gpu:550.1392211914062 
"""
# Its stderr around the first steps: tqdm redraws its bar with carriage returns.
PROGRESS_BAR = (
    " Profiler config after instantiation: {'enabled': False}\n\r  0%|          | 0/3 [00:00<?, ?it/s]"
    "\r 33%|███▎      | 1/3 [00:01<00:02,  1.07s/it]\r1|1|Loss: 6.584708213806152:  33%|███▎      | 1/3 "
    "[00:01<00:02,  1.07s/it]\r1|2|Loss: 5.992371082305908: 100%|██████████| 3/3 [00:02<00:00,  1.03it/s]"
    "Starting checkpoint save...\n"
)
SAVED_CONFIG = "batch_size: 2\nepochs: 2\nmax_steps_per_epoch: 3\n"


def test_torchtunes_metric_lines_are_read_and_other_lines_are_not():
    point = torchtune_point(METRIC_LOG.splitlines()[4])
    assert point is not None and point.step == 5
    assert point.values == {"loss": 6.2772603034973145, "lr": 2.8647450843757897e-05, "tokens_per_s": 143.456787109375}
    assert [torchtune_point(line) for line in ("Step x | loss:1", "Step 3 | loss:nan", "Loss is initialized.", "")] == [None] * 4


def test_an_epoch_has_as_many_steps_as_the_progress_bar_counts():
    assert steps_per_epoch(PROGRESS_BAR) == 3
    assert steps_per_epoch("Map: 100%|██████████| 12/12 [00:00<00:00]\n") is None, "a dataset's bar is not training"


def test_a_commands_own_regex_and_jsonl_lines():
    pattern = re.compile(r"it (?P<step>\d+): loss=(?P<loss>[\d.]+) of (?P<steps_total>\d+)")
    point = pattern_point("[train] it 7: loss=0.25 of 100", pattern)
    assert point is not None and (point.step, point.values) == (7, {"loss": 0.25, "steps_total": 100.0})
    assert jsonl_point('{"step": 2, "loss": 1.5, "lr": 0.1, "note": "x"}').values == {"loss": 1.5, "lr": 0.1}
    assert [jsonl_point(text) for text in ('{"step": true, "loss": 1}', '{"step": 1.5, "loss": 1}', "[1]", "{")] == [None] * 4


def test_a_step_trained_again_after_a_resume_keeps_its_latest_value_and_leaves_no_gap():
    first = [torchtune_point(line) for line in METRIC_LOG.splitlines()[:5]]  # interrupted in epoch 2
    again = [torchtune_point(line.replace("loss:6", "loss:5")) for line in METRIC_LOG.splitlines()[3:]]
    steps = curve([*first, *again])
    assert [step for step, _ in steps] == [1, 2, 3, 4, 5, 6]
    assert [loss for _, loss in steps][3:] == [5.506674289703369, 5.2772603034973145, 5.565833568572998]


def test_torchtunes_resumed_attempt_numbers_its_steps_from_1_and_they_follow_the_last_whole_epoch():
    from ttlaunch.monitor.training_log import MetricPoint, stitched

    # As on the test cluster: attempt 1 logged 1675 steps (175 into epoch 2 of 1500 steps),
    # attempt 2 resumed after epoch 1 and logged its 1500 steps as 1..1500.
    first = [MetricPoint(step, {"loss": 6.0}) for step in range(1, 1676)]
    second = [MetricPoint(step, {"loss": 4.0}) for step in range(1, 1501)]
    steps = [step for step, _ in curve(stitched([first, second], steps_per_epoch=1500))]
    assert steps == list(range(1, 3001)), "no gap, no step twice"
    assert dict(curve(stitched([first, second], 1500)))[1600] == 4.0, "the steps trained again count"
    # A first attempt that never finished an epoch: the next one starts over.
    assert [step for step, _ in curve(stitched([first[:100], second[:50]], 1500))] == list(range(1, 101))


def running_job(tmp_path: Path, payload_kind: PayloadKind = PayloadKind.torchtune) -> tuple[Ledger, JobRecord]:
    ledger = Ledger.open(tmp_path, "demo")
    ledger.state.payload_kind = payload_kind
    job_dir = tmp_path / "r8"
    (job_dir / "outputs" / "logs").mkdir(parents=True)
    record = JobRecord(
        name="r8", run_name="r8", job_id="7", status=JobState.RUNNING, job_dir=str(job_dir),
        output_dir=str(job_dir / "outputs"), stdout=str(job_dir / "out.txt"), stderr=str(job_dir / "err.txt"),
    )
    ledger.state.jobs["r8"] = record
    return ledger, record


def test_the_monitor_reads_only_what_is_new_and_keeps_the_last_values_of_torchtunes_log(tmp_path: Path):
    ledger, record = running_job(tmp_path)
    output = Path(record.output_dir)
    (output / "torchtune_config.yaml").write_text(SAVED_CONFIG)
    Path(record.stderr).write_text(PROGRESS_BAR)
    log = output / "logs" / "log_1795487293.txt"
    lines = METRIC_LOG.splitlines(keepends=True)
    log.write_text("".join(lines[:2]) + lines[2][:20])  # the third line is still being written
    clock = [100.0]
    watch = TrainingWatch(ledger, clock=lambda: clock[0])
    faults = Containment(ledger.events, ledger.sweep_dir)
    assert watch.read(faults)
    progress = record.training
    assert (progress.steps_done, progress.steps_total, progress.steps_per_epoch) == (2, 6, 3)
    assert progress.read[str(log)] == len("".join(lines[:2]).encode())
    clock[0] = 112.0
    log.write_text("".join(lines))
    assert watch.read(faults)
    assert (progress.steps_done, progress.loss, progress.lr) == (6, 6.565833568572998, 0.0)
    assert progress.min_loss == 5.992371082305908 and progress.tokens_per_s == 550.1392211914062
    assert progress.step_time_s == 12.0 / (6 - 2)
    assert progress.remaining_s() == 0
    assert not watch.read(faults), "nothing new, nothing changed"
    record.status = JobState.COMPLETED
    ledger.save()
    saved = load_state(tmp_path / STATE_FILE_NAME, "demo", tmp_path).jobs["r8"].training
    assert saved == progress


def test_a_requeued_attempt_adds_to_the_progress_rather_than_starting_over(tmp_path: Path):
    ledger, record = running_job(tmp_path)
    output = Path(record.output_dir)
    (output / "torchtune_config.yaml").write_text(SAVED_CONFIG)
    lines = METRIC_LOG.splitlines(keepends=True)
    (output / "logs" / "log_1.txt").write_text("".join(lines[:5]))
    watch = TrainingWatch(ledger)
    faults = Containment(ledger.events, ledger.sweep_dir)
    watch.read(faults)
    record.attempt = 2  # resumed from epoch 0: steps 4 and 5 again, in a new log file
    (output / "logs" / "log_2.txt").write_text("".join(line.replace("loss:6", "loss:4") for line in lines[3:]))
    watch.read(faults)
    progress = record.training
    assert progress.steps_done == 6 and progress.loss == 4.565833568572998
    assert progress.min_loss == 4.2772603034973145
    assert set(progress.read) == {str(output / "logs" / "log_1.txt"), str(output / "logs" / "log_2.txt"), record.stderr}


def test_the_monitor_places_a_resumed_attempts_steps_after_the_epoch_it_resumed_from(tmp_path: Path):
    ledger, record = running_job(tmp_path)
    output = Path(record.output_dir)
    (output / "torchtune_config.yaml").write_text(SAVED_CONFIG)
    lines = METRIC_LOG.splitlines(keepends=True)
    (output / "logs" / "log_1.txt").write_text("".join(lines[:5]))  # stopped at step 5, in epoch 2
    watch = TrainingWatch(ledger)
    faults = Containment(ledger.events, ledger.sweep_dir)
    watch.read(faults)
    record.attempt = 2  # resumed after epoch 1: torchtune logs its steps 4, 5, 6 as 1, 2, 3
    renumbered = [line.replace(f"Step {step} ", f"Step {step - 3} ") for step, line in zip(range(4, 7), lines[3:])]
    (output / "logs" / "log_2.txt").write_text("".join(renumbered))
    watch.read(faults)
    assert (record.training.steps_done, record.training.steps_total, record.training.loss) == (6, 6, 6.565833568572998)


def test_a_commands_jsonl_metrics_count_toward_its_declared_total(tmp_path: Path):
    ledger, record = running_job(tmp_path, payload_kind=PayloadKind.command)
    ledger.state.metrics_jsonl = "metrics.jsonl"
    rows = [{"step": step, "loss": 1.0 / step, "steps_total": 10} for step in (1, 2, 3)]
    (Path(record.output_dir) / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    TrainingWatch(ledger).read(Containment(ledger.events, ledger.sweep_dir))
    assert (record.training.steps_done, record.training.steps_total, record.training.loss) == (3, 10, 1.0 / 3)


def test_with_a_logger_that_writes_elsewhere_the_losses_come_from_the_progress_bar(tmp_path: Path):
    ledger, record = running_job(tmp_path)
    output = Path(record.output_dir)
    # cruijff_kit's scaffolds log to Weights & Biases, offline: no metric lines anywhere ttlaunch reads.
    (output / "torchtune_config.yaml").write_text(
        SAVED_CONFIG + "metric_logger:\n  _component_: torchtune.training.metric_logging.WandBLogger\n  mode: offline\n"
    )
    # tqdm starts each redraw with \r: the one after it is still being written.
    Path(record.stderr).write_text(PROGRESS_BAR[: PROGRESS_BAR.index("\r1|2|") + 1])
    watch = TrainingWatch(ledger)
    faults = Containment(ledger.events, ledger.sweep_dir)
    assert watch.read(faults)
    progress = record.training
    assert (progress.steps_done, progress.loss, progress.steps_per_epoch, progress.steps_total) == (1, 6.584708213806152, 3, 6)
    Path(record.stderr).write_text(PROGRESS_BAR)
    assert watch.read(faults)
    assert (progress.steps_done, progress.loss, progress.min_loss) == (2, 5.992371082305908, 5.992371082305908)


def test_an_apps_losses_come_from_its_log_lines_on_either_stream_or_a_jsonl_in_its_job_dir(tmp_path: Path):
    ledger, record = running_job(tmp_path, payload_kind=PayloadKind.app)
    record.output_dir = None  # an app's job: Hydra's output dir is its job dir
    ledger.state.metrics_pattern = r"Epoch (?P<step>\d+): loss=(?P<loss>[0-9.]+)"
    # vec-playbook's trainer, through Hydra's logging (stdout), and a print of its own on stderr.
    Path(record.stdout).write_text("[2026-12-05 18:14:52][mlp.single.train][INFO] - Epoch 1: loss=1.0845 acc=39.70%\n")
    Path(record.stderr).write_text("Epoch 2: loss=0.9000 acc=41.00%\n")
    TrainingWatch(ledger).read(Containment(ledger.events, ledger.sweep_dir))
    assert (record.training.steps_done, record.training.loss, record.training.min_loss) == (2, 0.9, 0.9)

    ledger, record = running_job(tmp_path / "jsonl", payload_kind=PayloadKind.app)
    record.output_dir = None
    ledger.state.metrics_jsonl = "metrics.jsonl"
    (Path(record.job_dir) / "metrics.jsonl").write_text('{"step": 5, "loss": 0.25}\n')
    TrainingWatch(ledger).read(Containment(ledger.events, ledger.sweep_dir))
    assert (record.training.steps_done, record.training.loss) == (5, 0.25)
