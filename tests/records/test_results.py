"""The results table and the pictures, from jobs.json records (figure data checked through
matplotlib's objects, not pixels)."""

from pathlib import Path

import pytest

from ttlaunch.records.jobs_file import JobRecord, SweepState, TrainingProgress
from ttlaunch.records.results import result_rows, results_table, sorted_rows, swept_parameters


def job(name: str, lr: float, rank: int, loss: float | None, status: str = "COMPLETED", **fields) -> JobRecord:
    return JobRecord(
        name=name, run_name=name, job_id=str(abs(hash(name)) % 1000), status=status,
        submitted="2026-11-24 10:00:00", started="2026-11-24 10:01:00", completed="2026-11-24 11:01:00",
        elapsed_s=3600.0,
        submitted_with={"parameters": {"epochs": 2, "lr": lr, "lora_rank": rank},
                        "compute": {"nodes": 1, "gpus_per_node": 4, "gres": None}},
        training=TrainingProgress(steps_done=100, steps_total=100, loss=loss, min_loss=loss and loss - 0.1, tokens_per_s=900.0)
        if loss is not None else None,
        **fields,
    )


def sweep() -> SweepState:
    state = SweepState(experiment="cap", sweep_dir="/s")
    for record in (
        job("r8_lr1e-4", 1e-4, 8, 1.5), job("r8_lr1e-5", 1e-5, 8, 1.2), job("r16_lr1e-4", 1e-4, 16, 1.4),
        job("r16_lr1e-5", 1e-5, 16, None, status="FAILED", previous_job_ids=["1"]),
    ):
        state.jobs[record.name] = record
    return state


def test_a_row_per_run_with_what_differs_between_runs_and_what_it_cost():
    rows = result_rows(sweep())
    assert swept_parameters(rows) == ["lr", "lora_rank"], "epochs is the same for all: not a column"
    first = rows[0]
    assert (first.final_loss, first.min_loss, first.tokens_per_s, first.wall_time_s) == (1.5, 1.4, 900.0, 3600.0)
    assert (first.hours, first.unit) == (4.0, "GPU"), "an hour on 4 GPUs"
    assert rows[3].attempts == 2 and rows[3].final_loss is None


def test_best_first_by_the_chosen_measure_or_parameter_and_runs_without_it_last():
    rows = result_rows(sweep())
    assert [row.run for row in sorted_rows(rows, "final_loss")] == ["r8_lr1e-5", "r16_lr1e-4", "r8_lr1e-4", "r16_lr1e-5"]
    assert [row.run for row in sorted_rows(rows, "lr")][:2] == ["r8_lr1e-5", "r16_lr1e-5"]


def test_the_table_in_markdown_with_the_sweeps_total():
    lines = results_table(sweep(), "final_loss")
    assert lines[0] == "### Results" and lines[2] == "Sorted by final_loss, best first (smallest)."
    assert lines[4] == "| Run | lr | lora_rank | Status | Final loss | Min loss | Tokens/s | Wall time | Attempts | GPU-hours |"
    assert lines[6] == "| r8_lr1e-5 | 1e-05 | 8 | COMPLETED | 1.2 | 1.1 | 900 | 1h 0m 0s | 1 | 4 |"
    assert lines[9] == "| r16_lr1e-5 | 1e-05 | 16 | FAILED | - | - | - | 1h 0m 0s | 2 | 4 |"
    assert lines[-1] == "Total compute: 16 GPU-hours."


def test_loss_curves_have_a_line_per_run_with_a_point_per_logged_step():
    pytest.importorskip("matplotlib")
    from ttlaunch.records.plots import loss_curves_figure

    figure = loss_curves_figure({"a": [(1, 2.0), (2, 1.5), (3, 1.2)], "b": [(1, 2.1), (2, 1.9)], "c": []})
    lines = figure.axes[0].get_lines()
    assert [(line.get_label(), list(line.get_xdata())) for line in lines] == [("a", [1, 2, 3]), ("b", [1, 2])]
    assert list(lines[0].get_ydata()) == [2.0, 1.5, 1.2]


def test_final_loss_by_the_swept_number_one_series_per_value_of_the_other_parameter():
    pytest.importorskip("matplotlib")
    from ttlaunch.records.plots import loss_by_parameter_figure, numeric_sweep

    rows = result_rows(sweep())
    assert numeric_sweep(rows) == ("lr", "lora_rank")
    lines = loss_by_parameter_figure(rows, "lr", "lora_rank").axes[0].get_lines()
    assert {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in lines} == {
        "lora_rank=8": ([1e-5, 1e-4], [1.2, 1.5]), "lora_rank=16": ([1e-4], [1.4]),
    }


def test_the_timeline_has_a_bar_per_job_and_a_tick_per_requeue(tmp_path: Path):
    pytest.importorskip("matplotlib")
    from ttlaunch.records.plots import timeline_figure, write_pictures

    state = sweep()
    state.jobs["r8_lr1e-4"].requeues = [{"attempt": 1, "reason": "preempted", "at": "2026-11-24 10:30:00"}]
    axes = timeline_figure(state).axes[0]
    assert [label.get_text() for label in axes.get_yticklabels()] == list(reversed(state.jobs))
    assert len(axes.patches) == 2 * len(state.jobs), "queued and running, for each job"
    assert [line.get_xdata()[0] for line in axes.get_lines()] == [30.0], "minutes since the first submission"
    assert axes.get_xlabel() == "minutes since the first submission"
    written = write_pictures(state, {"r8_lr1e-4": [(1, 2.0), (2, 1.0)]}, tmp_path)
    assert [path.name for path in written] == ["loss_curves.png", "timeline.png", "loss_by_lr.png"]
    assert all(path.read_bytes()[:4] == b"\x89PNG" for path in written)


def test_a_controls_score_on_its_base_model_stands_beside_the_fine_tuned_runs():
    state = sweep()
    state.jobs["r8_lr1e-4/epoch1"] = JobRecord(  # its other task failed: cap's score stands
        name="r8_lr1e-4/epoch1", run_name="r8_lr1e-4", job_id="7", status="FAILED", kind="evaluation", tasks=["cap", "qa"],
        scores={"cap": {"metrics": {"match/accuracy": 0.75}, "samples": 4}},
    )
    state.jobs["base/model"] = JobRecord(
        name="base/model", run_name="base", job_id="8", status="COMPLETED", kind="evaluation", tasks=["cap"],
        scores={"cap": {"metrics": {"match/accuracy": 0.25}, "samples": 4}},
    )
    rows = result_rows(state)
    base = rows[-1]
    assert (base.run, base.attempts, base.hours, base.scores) == ("base", None, None, {"cap": (None, "match/accuracy", 0.25)})
    assert swept_parameters(rows) == ["lr", "lora_rank"], "the control has none, and changes nothing swept"
    lines = results_table(state, "cap")
    assert lines[6].startswith("| r8_lr1e-4 | 0.0001 | 8 | COMPLETED |") and lines[6].endswith("| 0.75 (epoch 1) |")
    assert "| base | - | - | COMPLETED |" in lines[7] and lines[7].endswith("| 0.25 (as given) |")
    assert lines[-1] == "Total compute: 16 GPU-hours.", "the trained runs only"
