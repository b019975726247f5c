"""The sweep's one-time preparation: one job prepares, the others wait only while it does."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from functools import partial
from pathlib import Path

import pytest
from filelock import FileLock

from ttlaunch.inputs.payload_command import PayloadCommand
from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.inputs.torchtune_configs import tune_config
from ttlaunch.job.job_payloads import job_payload
from ttlaunch.job.preparation import PREPARED_DIR, Preparation, dataset_step, prepare_once, prepared_record


def _slow_step(marker: Path, seconds: float) -> list[str]:
    with marker.open("a") as stream:
        stream.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return []


def _step(marker: Path, seconds: float = 1.0, depends_on: dict | None = None) -> Preparation:
    return Preparation("build the cache", depends_on or {"step": "test", "data": "a"}, partial(_slow_step, marker, seconds))


def _job(sweep: Path, marker: Path, name: str, results: dict) -> None:
    began = time.time()  # the wall clock: the jobs are processes, compared with each other
    did = prepare_once(sweep, _step(marker), name)
    results[name] = (did, began, time.time())


@pytest.mark.cli
def test_of_jobs_starting_together_one_prepares_and_the_others_wait_until_it_is_done(tmp_path: Path):
    marker = tmp_path / "built_by.txt"
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager:
        results = manager.dict()
        jobs = [context.Process(target=_job, args=(tmp_path, marker, f"job{index}", results)) for index in range(6)]
        for job in jobs:
            job.start()
        for job in jobs:
            job.join(timeout=60)
        outcomes = dict(results)
    assert len(marker.read_text().split()) == 1, "exactly one job prepared"
    assert sorted(did for did, _, _ in outcomes.values()) == [False] * 5 + [True]
    preparer = next(name for name, (did, _, _) in outcomes.items() if did)
    # Every job went on only once the step was done (it takes 1 s from the preparer's start),
    # however late it started itself (a loaded machine starts some later).
    step_done = outcomes[preparer][1] + 0.9
    assert all(went_on >= step_done for _, _, went_on in outcomes.values()), outcomes
    record = json.loads(next((tmp_path / PREPARED_DIR).glob("*.json")).read_text())
    assert record["prepared_by"] == preparer and record["what"] == "build the cache" and record["seconds"] >= 1


def test_a_job_arriving_once_the_step_is_recorded_does_not_wait_for_its_lock(tmp_path: Path):
    marker = tmp_path / "built_by.txt"
    step = _step(marker, seconds=0)
    assert prepare_once(tmp_path, step, "first") is True
    # Someone holds the step's lock (a preparation of it in progress elsewhere): a job that
    # finds the record goes on regardless.
    with FileLock(str(tmp_path / PREPARED_DIR / f"{step.key}.lock")):
        outcome: list[bool] = []
        worker = threading.Thread(target=lambda: outcome.append(prepare_once(tmp_path, step, "later")))
        worker.start()
        worker.join(timeout=5)
        assert outcome == [False], "the later job waited on the lock"
    assert len(marker.read_text().split()) == 1


def test_a_failed_step_is_not_recorded_and_the_next_job_does_it(tmp_path: Path):
    def fail() -> list[str]:
        raise RuntimeError("download failed")

    step = Preparation("download", {"step": "test"}, fail)
    with pytest.raises(RuntimeError, match="download failed"):
        prepare_once(tmp_path, step, "first")
    assert prepared_record(tmp_path, step.key) is None
    done = Preparation("download", {"step": "test"}, lambda: [])
    assert prepare_once(tmp_path, done, "second") is True
    assert prepared_record(tmp_path, step.key)["prepared_by"] == "second"


def test_different_inputs_are_prepared_each_once_and_a_lost_product_again(tmp_path: Path):
    cache = tmp_path / "cache"
    made: list[str] = []

    def build(name: str) -> list[str]:
        made.append(name)
        (cache / name).mkdir(parents=True, exist_ok=True)
        return [str(cache / name)]

    first = Preparation("cache a", {"dataset": "a"}, partial(build, "a"))
    second = Preparation("cache b", {"dataset": "b"}, partial(build, "b"))
    for step in (first, second, first, second):
        prepare_once(tmp_path, step, "job")
    assert made == ["a", "b"]
    (cache / "a").rmdir()  # the cache was deleted: its record no longer holds
    assert prepare_once(tmp_path, first, "job") is True and made == ["a", "b", "a"]


def _tune_argv(config: Path, *overrides: str) -> tuple[str, ...]:
    return ("tune", "run", "lora_finetune_single_device", "--config", str(config), *overrides)


DATASET_CONFIG = """\
output_dir: /tmp/out
model: {_component_: torchtune.models.llama2.lora_llama2, lora_rank: 8}
optimizer: {_component_: torch.optim.AdamW, lr: 0.001}
dataset:
  _component_: torchtune.datasets.instruct_dataset
  source: json
  data_files: DATA
  split: train
tokenizer: {_component_: torchtune.models.llama2.llama2_tokenizer, path: /tmp/tok.model}
"""


def test_runs_differing_only_in_training_parameters_share_one_dataset_step(tmp_path: Path):
    data = tmp_path / "train.json"
    data.write_text("[]")
    config = tmp_path / "config.yaml"
    config.write_text(DATASET_CONFIG.replace("DATA", str(data)))
    env = {"HF_HOME": str(tmp_path / "hf")}

    def key(*overrides: str, environ: dict = env) -> str:
        step = dataset_step(_tune_argv(config, *overrides), environ, run=lambda argv, env: None)
        assert step is not None
        return step.key

    base = key("optimizer.lr=0.0003", "model.lora_rank=4", "output_dir=/tmp/a")
    assert key("optimizer.lr=0.0001", "model.lora_rank=8", "output_dir=/tmp/b") == base
    assert key("dataset.split=train[:10]") != base
    other = tmp_path / "other.json"
    other.write_text("[]")
    assert key(f"dataset.data_files={other}") != base
    assert key(environ={"HF_HOME": str(tmp_path / "elsewhere")}) != base
    data.write_text('[{"instruction": "x", "output": "y"}]')  # the data changed: build again
    assert key() != base


def test_a_command_without_a_readable_config_or_dataset_has_no_dataset_step(tmp_path: Path):
    config = tmp_path / "config.yaml"
    config.write_text("output_dir: /tmp/out\n")
    run = lambda argv, env: None  # noqa: E731
    assert dataset_step(_tune_argv(config), {}, run) is None
    assert dataset_step(_tune_argv(tmp_path / "written_later.yaml"), {}, run) is None


def test_prepare_commands_are_keyed_without_the_jobs_own_variables(tmp_path: Path):
    def command(run: str, attempt: str) -> PayloadCommand:
        env = {"HF_HOME": "/cache", "TTLAUNCH_RUN_NAME": run, "TTLAUNCH_ATTEMPT": attempt}
        return PayloadCommand(argv=("true",), env=env, output_dir=tmp_path / run, prepare=(("make", "assets"),))

    ran: list[tuple] = []
    ways = job_payload(PayloadKind.command)
    first = list(ways.preparation(command("a", "1"), lambda argv, env: ran.append((argv, env))))
    second = list(ways.preparation(command("b", "2"), lambda argv, env: None))
    assert [step.key for step in first] == [step.key for step in second]
    first[0].act()
    assert ran == [(("make", "assets"), {"HF_HOME": "/cache"})]


def test_tune_config_merges_overrides_as_torchtune_does(tmp_path: Path):
    config = tmp_path / "config.yaml"
    config.write_text(DATASET_CONFIG.replace("DATA", "/data/train.json") + "profiler: {enabled: false}\nseed: 3\n")
    merged = tune_config(_tune_argv(
        config, "dataset=torchtune.datasets.alpaca_dataset", "dataset.packed=True", "~profiler", "seed=None",
    ))
    assert merged.dataset._component_ == "torchtune.datasets.alpaca_dataset"
    assert merged.dataset.packed is True and merged.dataset.source == "json"
    assert "profiler" not in merged and merged.seed is None
    assert tune_config(_tune_argv(tmp_path / "missing.yaml")) is None
    assert tune_config(("tune", "run", "recipe")) is None


def test_a_local_sweep_runs_its_prepare_command_once_before_any_payload(run_cli, tmp_path: Path):
    experiment = tmp_path / "cfg" / "experiment" / "three.yaml"
    experiment.parent.mkdir(parents=True)
    experiment.write_text(
        "experiment: {name: three}\nruns:\n"
        + "".join(f"  - {{name: r{index}, type: fine-tuned}}\n" for index in range(3))
    )
    built = tmp_path / "built.txt"
    # The prepare step takes 2 s; each payload checks the step finished before it started.
    prepare = f"echo start >> {built}; sleep 2; echo done >> {built}"
    payload = f"tail -n 1 {built} > {{output_dir}}/seen.txt"
    result = run_cli(
        "--config-dir", str(tmp_path / "cfg"), "experiment=three", "payload=command",
        f"payload.command=[sh,-c,'{payload}']", f"payload.prepare=[[sh,-c,'{prepare}']]",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert built.read_text() == "start\ndone\n", "prepared exactly once"
    sweep = tmp_path / "work" / "ttlaunch_sweeps" / "three"
    assert [(sweep / f"r{index}" / "outputs" / "seen.txt").read_text() for index in range(3)] == ["done\n"] * 3
    logs = "".join(path.read_text() for path in sweep.glob("r*/submitit/*_log.out"))
    assert logs.count("preparing for the sweep: payload.prepare[0]") == 1
    assert logs.count("while this job waited") + logs.count("prepared already by") == 2
    (record,) = [json.loads(path.read_text()) for path in (sweep / PREPARED_DIR).glob("*.json")]
    assert record["what"].startswith("payload.prepare[0]: sh -c") and record["depends_on"]["step"] == "command"
