import pytest

from ttlaunch.errors import InputError
from ttlaunch.inputs.summary import parse_experiment
from ttlaunch.submit.plan import job_name_of, plan_jobs

EXPERIMENT = parse_experiment(
    {
        "experiment": {"name": "x"},
        "runs": [
            {"name": "r8", "type": "fine-tuned", "lora_rank": 8},
            {"name": "r16", "type": "Fine-tuned", "lora_rank": 16},
            {"name": "base", "type": "control"},
            {"name": "zs", "type": "eval-only"},
        ],
    },
    "x.yaml",
)


def test_one_job_per_fine_tuned_run_named_after_it():
    jobs = plan_jobs(EXPERIMENT, [["compute=local/cpu"]])
    assert [job.name for job in jobs] == ["r8", "r16"]
    assert jobs[0].overrides == ("compute=local/cpu", "run_name=r8", "hydra.job.name=r8")
    assert job_name_of(jobs[1].overrides) == "r16"


def test_a_command_line_sweep_multiplies_jobs_and_names_them_by_the_swept_values():
    combos = [["+seed=1", "compute=local/cpu"], ["+seed=2", "compute=local/cpu"]]
    jobs = plan_jobs(EXPERIMENT, combos)
    assert [job.name for job in jobs] == ["r8__seed-1", "r16__seed-1", "r8__seed-2", "r16__seed-2"]
    assert "+seed=2" in jobs[2].overrides and "run_name=r8" in jobs[2].overrides


def test_names_are_stable_across_launches():
    combos = [["+seed=1"], ["+seed=2"]]
    assert [j.name for j in plan_jobs(EXPERIMENT, combos)] == [j.name for j in plan_jobs(EXPERIMENT, combos)]


def test_swept_values_are_made_path_safe():
    jobs = plan_jobs(EXPERIMENT, [["payload.overrides=[a/b]"], ["payload.overrides=[c]"]])
    assert jobs[0].name == "r8__payload.overrides-a-b"


def test_sweeping_the_experiment_is_refused():
    with pytest.raises(InputError) as caught:
        plan_jobs(EXPERIMENT, [["experiment=a"], ["experiment=b"]])
    assert caught.value.field == "experiment"


def test_colliding_job_names_are_an_error():
    with pytest.raises(InputError, match="two jobs would be named"):
        plan_jobs(EXPERIMENT, [["+tag=a/b"], ["+tag=a-b"]])
