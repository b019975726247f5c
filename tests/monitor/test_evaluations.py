"""Evaluations as the summary names them, with inspect's options, and their scores read back
with inspect's own log reader."""

import subprocess
import sys
from pathlib import Path

import pytest

from ttlaunch.backend.observation import Observation
from ttlaunch.base.errors import InputError
from ttlaunch.inputs.evaluation_plan import EvaluationTarget, evaluation_command, own_caches
from ttlaunch.inputs.schema import EvaluationConfig
from ttlaunch.inputs.summary import EvaluationSettings, parse_experiment
from ttlaunch.monitor.state_changes import apply_state
from ttlaunch.records.jobs_file import JobKind, JobRecord
from ttlaunch.scheduler.states import JobState

TASK_FILE = '''\
from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.model import ModelOutput
from inspect_ai.scorer import includes
from inspect_ai.solver import solver


@solver
def answer_default():
    async def solve(state, generate):  # no model called: the test needs no network and no weights
        state.output = ModelOutput.from_content(model="none", content="Default")
        return state

    return solve


@task
def echo(samples: int = 2):
    return Task(dataset=[Sample(input=f"say {n}", target="Default") for n in range(int(samples))],
                solver=[answer_default()], scorer=includes())
'''


def summary(tmp_path: Path, **task: object) -> dict:
    return {
        "experiment": {"name": "e"}, "controls": {"system_prompt": "Be brief.", "epochs": 1},
        "runs": [{"name": "r8", "type": "fine-tuned"}],
        "evaluation": {"tasks": [{"name": "echo", **task}], "matrix": [{"run": "r8", "tasks": ["echo"], "epochs": [0]}]},
    }


def test_a_task_runs_from_its_script_with_the_runs_and_the_tasks_settings(tmp_path: Path):
    (tmp_path / "tasks.py").write_text(TASK_FILE)
    experiment = parse_experiment(
        summary(tmp_path, script="tasks.py", temperature=0.0, max_tokens=8, args={"samples": 3}), "s.yaml", script_base=tmp_path,
    )
    task = experiment.evaluation_task("echo")
    checkpoint = tmp_path / "r8" / "outputs" / "epoch_0"
    checkpoint.mkdir(parents=True)
    base = tmp_path / "base"
    base.mkdir()
    (base / "tokenizer.model").write_bytes(b"model")
    command = evaluation_command(
        EvaluationConfig(), EvaluationTarget("r8", ("echo",), 0, "r8"), tmp_path / "r8" / "outputs",
        tmp_path / "r8" / "echo" / "epoch0",
        task, base, {**experiment.controls, **experiment.run("r8").parameters},
    )
    assert command.argv == (
        "inspect", "eval", f"{tmp_path / 'tasks.py'}@echo", "--model", f"hf/{checkpoint}",
        "--log-dir", f"{tmp_path / 'r8' / 'echo' / 'epoch0' / 'outputs'}",
        "--system-message", "Be brief.", "--temperature", "0.0", "--max-tokens", "8", "-T", "samples=3",
        "-M", f"tokenizer_path={base}",
    ), "a checkpoint without tokenizer files gets the base model's"
    (checkpoint / "tokenizer.model").write_bytes(b"model")
    again = evaluation_command(
        EvaluationConfig(), EvaluationTarget("r8", ("echo",), 0, "r8"), tmp_path / "r8" / "outputs", tmp_path / "x", task, base,
    )
    assert "-M" not in again.argv
    # The summary's own evaluation settings, under the task's: greedy decoding, a seed, its max_tokens.
    shared = evaluation_command(
        EvaluationConfig(), EvaluationTarget("r8", ("echo",), 0, "r8"), tmp_path / "r8" / "outputs", tmp_path / "x", task, base,
        shared=EvaluationSettings(max_tokens=4, do_sample=False, temperature=0.7, seed=3, system_prompt="Answer."),
    )
    assert shared.argv[shared.argv.index("--max-tokens") + 1] == "8", "the task's max_tokens over the summary's"
    assert shared.argv[shared.argv.index("--system-message") + 1] == "Answer."
    assert shared.argv[shared.argv.index("--temperature") + 1] == "0.0", "the task's; the summary's is not sampled with"
    assert shared.argv[-4:] == ("-M", "do_sample=false", "--seed", "3")


@pytest.mark.parametrize(
    ("task", "field", "words"),
    [
        ({"script": "missing.py"}, "evaluation.tasks[0].script", "missing.py does not exist"),
        ({"scorer": "f1"}, "evaluation.tasks[0].scorer", "unknown field"),
        ({"temperature": [0, 1]}, "evaluation.tasks[0].temperature", "expected one value"),
    ],
)
def test_a_task_that_cannot_run_is_an_error_before_anything_is_submitted(tmp_path: Path, task, field, words):
    with pytest.raises(InputError) as raised:
        parse_experiment(summary(tmp_path, **task), "s.yaml", script_base=tmp_path)
    assert raised.value.field == field and words in str(raised.value)


def evaluation_record(tmp_path: Path) -> JobRecord:
    output = tmp_path / "r8" / "echo" / "epoch0" / "outputs"
    output.mkdir(parents=True)
    return JobRecord(
        name="r8/epoch0", run_name="r8", kind="evaluation", job_id="9", status=JobState.RUNNING,
        output_dir=str(output), started="2026-11-24 10:00:00", tasks=["echo"],
    )


def test_an_evaluation_that_ends_without_a_log_is_failed_with_the_reason(tmp_path: Path):
    record = evaluation_record(tmp_path)
    (entry,) = apply_state(record, Observation(state=JobState.COMPLETED, completed="2026-11-24 10:01:00"))
    assert record.status is JobState.FAILED and record.scores == {}
    assert record.error == f"the evaluation left no inspect log in {record.output_dir}"
    assert ("Reason", record.error) in entry[2]


@pytest.mark.cli
def test_the_scores_of_a_real_inspect_log_come_back_into_the_record(tmp_path: Path):
    (tmp_path / "tasks.py").write_text(TASK_FILE)
    record = evaluation_record(tmp_path)
    inspect = Path(sys.executable).parent / "inspect"
    ran = subprocess.run(
        [str(inspect), "eval", f"{tmp_path / 'tasks.py'}@echo", "--model", "none", "--log-dir", str(record.output_dir),
         "--display", "plain"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    (entry,) = apply_state(record, Observation(state=JobState.COMPLETED, completed="2026-11-24 10:01:00"))
    assert record.status is JobState.COMPLETED
    scores = record.scores["echo"]
    assert scores["metrics"]["includes/accuracy"] == 1.0 and scores["samples"] == 2
    assert Path(scores["log"]).is_file() and Path(scores["log"]).parent == Path(record.output_dir)
    assert ("Scores", "includes/accuracy 1 (2 samples)") in entry[2]


BROKEN_TASK_FILE = TASK_FILE + '''

@task
def broken(samples: int = 2):
    raise RuntimeError("this task cannot be made")
'''


@pytest.mark.cli
def test_one_inspect_eval_runs_a_checkpoints_tasks_each_with_its_arguments_and_a_failed_one_hides_no_scores(tmp_path: Path):
    """Three tasks of one checkpoint in one `inspect eval` (one model load): two with arguments
    of their own, bound to them in the job's task file; the third cannot even be made. Each
    task's scores come from its own log; the failure is the job's, naming the task."""
    from ttlaunch.job.bound_tasks import one_inspect_run

    (tmp_path / "tasks.py").write_text(BROKEN_TASK_FILE)
    experiment = parse_experiment({
        "experiment": {"name": "e"}, "runs": [{"name": "r8", "type": "fine-tuned"}],
        "evaluation": {
            "tasks": [
                {"name": "echo", "script": "tasks.py", "args": {"samples": 3, "vis_label": "r8"}},  # it takes no vis_label
                {"name": "broken", "script": "tasks.py", "args": {"samples": 1}},
            ],
            "matrix": [{"run": "r8", "tasks": ["echo", "broken"], "epochs": [0]}],
        },
    }, "s.yaml", script_base=tmp_path)
    record = evaluation_record(tmp_path)
    job_dir = Path(record.output_dir).parent
    config = EvaluationConfig(command=["inspect", "eval", "{task}", "--model", "none", "--log-dir", "{output_dir}"])
    target = EvaluationTarget("r8", ("echo", "broken"), 0, "r8")
    commands = [
        (name, experiment.evaluation_task(name).script, evaluation_command(
            config, target, tmp_path / "r8" / "outputs", job_dir, experiment.evaluation_task(name)))
        for name in target.tasks
    ]
    command = one_inspect_run(commands, config.command.index("{task}"), job_dir)
    bound = job_dir / "tasks.py"
    assert command.argv[:4] == ("inspect", "eval", f"{bound}@echo", f"{bound}@broken") and "-T" not in command.argv
    inspect = Path(sys.executable).parent / "inspect"
    ran = subprocess.run(
        [str(inspect), *command.argv[1:], "--display", "plain"], capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert ran.returncode == 0, "inspect itself ends well: its logs tell"
    assert "evaluation task echo takes no vis_label: left out" in ran.stderr, "as inspect leaves out what a task does not take"
    record.tasks = list(target.tasks)
    (entry,) = apply_state(record, Observation(state=JobState.COMPLETED, completed="2026-11-24 10:01:00"))
    assert record.status is JobState.FAILED, "without every task's scores, not completed"
    assert record.scores["echo"]["samples"] == 3, "its own arguments"
    assert record.scores["echo"]["metrics"]["includes/accuracy"] == 1.0
    assert record.error.startswith("broken: inspect's log ") and "could not be made: RuntimeError('this task cannot be made')" in record.error
    assert "broken" not in record.scores
    assert ("Scores", "echo: includes/accuracy 1 (3 samples)") in entry[2]
    # Registry tasks, their task arguments alike, run without a task file.
    plain = one_inspect_run([("gsm8k", None, commands[0][2]), ("mmlu", None, commands[0][2])], 2, tmp_path / "plain")
    assert not (tmp_path / "plain").exists() and plain.argv.count(f"{tmp_path / 'tasks.py'}@echo") == 2


def test_a_checkpoints_tasks_share_a_job_unless_inspect_cannot_run_them_together(tmp_path: Path):
    from ttlaunch.inputs.evaluation_plan import planned_evaluations

    (tmp_path / "tasks.py").write_text(TASK_FILE)
    experiment = parse_experiment({
        "experiment": {"name": "e"}, "models": {"base": [{"name": "tiny", "path": str(tmp_path / "tiny")}]},
        "runs": [{"name": "r8", "type": "fine-tuned"}, {"name": "base", "type": "control", "model": "tiny"}],
        "evaluation": {
            "tasks": [
                {"name": "echo", "script": "tasks.py", "args": {"samples": 3}}, {"name": "echo2", "script": "tasks.py"},
                {"name": "long", "script": "tasks.py", "max_tokens": 64},  # inspect's --max-tokens: once per run
                {"name": "gsm8k", "args": {"fewshot": 5}},  # a registry task with arguments of its own
                "mmlu", "arc",  # registry tasks without arguments
            ],
            "matrix": [
                {"run": "r8", "tasks": ["echo", "echo2", "long", "gsm8k", "mmlu", "arc"], "epochs": [0, 1]},
                {"run": "base", "tasks": ["echo", "echo2"]},
            ],
        },
    }, "s.yaml", script_base=tmp_path)
    targets = planned_evaluations(experiment, {"r8": "r8"})
    assert {target.job_name: target.tasks for target in targets} == {
        "base/model": ("echo", "echo2"),
        "r8/epoch0": ("echo", "echo2"), "r8/long/epoch0": ("long",), "r8/gsm8k/epoch0": ("gsm8k",),
        "r8/mmlu/epoch0": ("mmlu", "arc"),  # one inspect eval of their own
        "r8/epoch1": ("echo", "echo2"), "r8/long/epoch1": ("long",), "r8/gsm8k/epoch1": ("gsm8k",),
        "r8/mmlu/epoch1": ("mmlu", "arc"),
    }
    separate = planned_evaluations(experiment, {"r8": "r8"}, EvaluationConfig(one_job_per_task=True))
    assert len(separate) == 14 and "r8/echo2/epoch1" in {target.job_name for target in separate}
    assert all(len(target.tasks) == 1 for target in separate)
    other = planned_evaluations(experiment, {"r8": "r8"}, EvaluationConfig(command=["./score.sh", "{task}", "{checkpoint}"]))
    assert len(other) == 14, "a command other than inspect's runs one task at a time"


def test_a_cruijff_task_gets_the_arguments_cruijffs_setup_inspect_derives(tmp_path):
    from ttlaunch.inputs.evaluation_plan import EvaluationTarget, cruijff_evaluation
    from ttlaunch.inputs.summary import parse_experiment

    (tmp_path / "task.py").write_text("# an inspect task file\n")
    experiment = parse_experiment({
        "experiment": {"name": "words"},
        "controls": {"prompt": "Capitalize: {input}\n", "system_prompt": "Be brief.", "dataset_type": "text_completion"},
        "data": {"training": {"path": "/data/words.json"}},
        "runs": [{"name": "r4", "type": "fine-tuned", "parameters": {"lora_rank": 4}}],
        "evaluation": {
            "max_tokens": 5, "seed": 7, "temperature": 0.3, "scorers": [{"name": "match"}],
            "tasks": [{"name": "cap", "script": "task.py", "dataset": "same", "description": "d"}],
            "matrix": [{"run": "r4", "vis_label": "rank4", "tasks": ["cap"], "epochs": [0]}],
        },
    }, "s.yaml", script_base=tmp_path)
    options, config = cruijff_evaluation(
        experiment, experiment.run("r4"), experiment.evaluation_tasks[0], EvaluationTarget("r4", ("cap",), 0, "r4"),
        tmp_path / "job",
    )
    assert options == (
        "-T", "data_path=/data/words.json", "-T", f"config_path={tmp_path / 'job' / 'eval.yaml'}", "-T", "vis_label=rank4",
        "-T", "use_chat_template=false", "-T", "max_tokens=5", "-M", "do_sample=false", "--seed", "7",
    )  # greedy decoding: no temperature
    assert (config["prompt"], config["system_prompt"], config["scorers"]) == ("Capitalize: {input}\n", "Be brief.", [{"name": "match"}])


def test_a_controls_evaluation_is_submitted_at_once_an_epochs_when_its_checkpoint_is_saved(tmp_path):
    from ttlaunch.monitor.evaluations import EvaluationTrigger
    from ttlaunch.monitor.poll_failures import Containment
    from ttlaunch.records.ledger import Ledger

    ledger = Ledger.open(tmp_path, "e")
    ledger.state.jobs["r8"] = JobRecord(name="r8", run_name="r8", job_id="1", status="RUNNING", output_dir=str(tmp_path / "r8"))
    submitted = []

    class Launcher:
        def submit(self, job_name, run_name, template_job, overrides, evaluation=False):
            submitted.append((job_name, run_name, template_job, list(overrides), evaluation))
            ledger.state.jobs[job_name] = JobRecord(name=job_name, run_name=run_name, job_id=str(len(submitted) + 1))
            return ledger.state.jobs[job_name].job_id

        def cancel(self, job_name):
            raise AssertionError("nothing is cancelled")

    targets = [EvaluationTarget("r8", ("cap", "qa"), 0, "r8"), EvaluationTarget("base", ("cap",), None, None)]
    scheduler = EvaluationTrigger(targets, EvaluationConfig(), ledger, Launcher())
    scheduler.after_poll(Containment(ledger.events, tmp_path))
    assert submitted == [("base/model", "base", "r8", ["+evaluation_target.tasks=[cap]", "+evaluation_target.epoch=null"], True)]
    control = ledger.state.jobs["base/model"]
    assert control.kind is JobKind.EVALUATION and control.tasks == ["cap"] and scheduler.pending, "epoch 0 is not saved yet"
    (tmp_path / "r8" / "epoch_0").mkdir(parents=True)
    (tmp_path / "r8" / "epoch_0" / "adapter_config.json").write_text("{}")
    scheduler.after_poll(Containment(ledger.events, tmp_path))
    assert [entry[0] for entry in submitted] == ["base/model", "r8/epoch0"] and not scheduler.pending
    assert submitted[-1][2:4] == (
        "r8", ["+evaluation_target.tasks=[cap,qa]", "+evaluation_target.epoch=0", "+evaluation_target.training_job=r8"]
    ), "it inherits the command line of the job that trained the checkpoint"
    assert ledger.state.jobs["r8/epoch0"].tasks == ["cap", "qa"], "both tasks in one job"
    # A base model the sweep's preparation makes: its evaluation waits until it is there.
    model = tmp_path / "assets" / "model"
    waiting = EvaluationTrigger(
        [EvaluationTarget("ctl", ("cap",), None, None)], EvaluationConfig(), ledger, Launcher(), given_models={"ctl": model}
    )
    waiting.after_poll(Containment(ledger.events, tmp_path))
    assert "ctl/model" not in ledger.state.jobs and waiting.pending, "r8 still trains: the model may come"
    model.mkdir(parents=True)
    waiting.after_poll(Containment(ledger.events, tmp_path))
    assert submitted[-1][0] == "ctl/model" and not waiting.pending


def test_each_job_of_a_command_line_sweep_has_its_checkpoints_evaluated(tmp_path):
    """`+seed=1,2` trains run r8 twice, as r8__seed-1 and r8__seed-2: each is evaluated, under its own dir."""
    from ttlaunch.inputs.evaluation_plan import planned_evaluations
    from ttlaunch.monitor.evaluations import EvaluationTrigger
    from ttlaunch.monitor.poll_failures import Containment
    from ttlaunch.records.ledger import Ledger

    experiment = parse_experiment(summary(tmp_path), "s.yaml")
    jobs = {"r8__seed-1": "r8", "r8__seed-2": "r8"}
    targets = planned_evaluations(experiment, jobs)
    assert [target.job_name for target in targets] == ["r8__seed-1/epoch0", "r8__seed-2/epoch0"]
    ledger = Ledger.open(tmp_path, "e")
    for name in jobs:
        ledger.state.jobs[name] = JobRecord(
            name=name, run_name="r8", job_id="1", status="RUNNING", output_dir=str(tmp_path / name)
        )
    submitted = []

    class Launcher:
        def submit(self, job_name, run_name, template_job, overrides, evaluation=False):
            submitted.append((job_name, run_name, template_job))
            ledger.state.jobs[job_name] = JobRecord(name=job_name, run_name=run_name, job_id="2")
            return "2"

    trigger = EvaluationTrigger(targets, EvaluationConfig(), ledger, Launcher())
    (tmp_path / "r8__seed-2" / "epoch_0").mkdir(parents=True)
    (tmp_path / "r8__seed-2" / "epoch_0" / "adapter_config.json").write_text("{}")
    trigger.after_poll(Containment(ledger.events, tmp_path))
    assert submitted == [("r8__seed-2/epoch0", "r8", "r8__seed-2")] and trigger.pending, "seed 1 has not saved epoch 0"


def test_an_evaluation_asks_for_what_evaluation_compute_changes_of_its_runs_compute(compose_config, tmp_path):
    from dataclasses import replace

    from ttlaunch.inputs.launch_inputs import read_inputs

    cfg = compose_config("experiment=cap_4L", "compute=killarney/h100_1x", "compute.mem_gb=32")
    inputs = read_inputs(cfg, cfg.hydra)
    experiment = parse_experiment({
        "experiment": {"name": "x"}, "runs": [{"name": "r", "type": "fine-tuned", "compute": {"time": "3:00:00"}}],
        "evaluation": {"compute": {"time": "0:20:00", "mem": "16G"}},
    }, "x.yaml")
    inputs = replace(inputs, experiment=experiment)
    assert (inputs.compute_for("r").timeout_min, inputs.compute_for("r").mem_gb) == (180, 32)
    evaluation = inputs.evaluation_compute_for("r")
    assert (evaluation.timeout_min, evaluation.mem_gb, evaluation.gpus_per_node) == (20, 32, 1), "the command line's memory wins"


@pytest.mark.cli
def test_a_failed_evaluation_fails_the_sweep_as_a_failed_training_does(run_cli, tmp_path):
    from support import TEST_CONFIGS

    script = tmp_path / "epoch.sh"
    script.write_text('mkdir -p "$1/epoch_0" "$1/epoch_1" && echo "{}" > "$1/epoch_0/adapter_config.json"\n'
                      'echo "{}" > "$1/epoch_1/adapter_config.json"\n')
    result = run_cli(
        "--config-dir", TEST_CONFIGS, "experiment=evaltest", "payload=command",
        f'payload.command=[sh,"{script}","{{output_dir}}"]', "evaluation.command=[sh,-c,'exit 3']",
        "hydra.callbacks.monitor.live=off", timeout=300,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    failed = result.stderr.split("3 of 4 jobs did not complete: ")[1].split("; see")[0]
    assert sorted(failed.split(", ")) == ["base/t1", "r/t1/epoch0", "r/t1/epoch1"]


def test_each_evaluation_caches_inspects_datasets_apart_and_hugging_face_stays_home(tmp_path: Path):
    job = tmp_path / "run" / "task" / "epoch0"
    # Evaluations of one task that start together do not share inspect's hf_dataset cache.
    assert own_caches(job, {"HOME": "/home/me"}) == {
        "XDG_CACHE_HOME": str(job / "cache"), "HF_HOME": "/home/me/.cache/huggingface",
    }
    assert own_caches(job, {"HOME": "/home/me", "XDG_CACHE_HOME": "/scratch/c"})["HF_HOME"] == "/scratch/c/huggingface"
    assert own_caches(job, {"HF_HOME": "/models/hf", "XDG_CACHE_HOME": "/scratch/c"})["HF_HOME"] == "/models/hf"
