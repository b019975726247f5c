import pytest

from ttlaunch.base.errors import InputError
from ttlaunch.inputs.summary import check_safe_name, parse_experiment
from ttlaunch.submit.sweep_jobs import MAX_NAME_LENGTH, app_job_names, job_name_of, plan_jobs

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


def test_an_apps_jobs_are_named_after_their_overrides_sorted_and_made_safe():
    names = app_job_names([["seed=1", "lr=1e-3"], ["seed=2", "+lr=1e-3"], ["optim=adam/w"]], "my_app")
    assert names == ["lr-1e-3__seed-1", "lr-1e-3__seed-2", "optim-adam-w"]
    assert all(check_safe_name(name, "test", "name") for name in names)


def test_names_keep_a_values_sign_and_no_value_reads_as_a_separator():
    names = app_job_names([["x=2.0", "y=-2.0"], ["x=-2.0", "y=2.0"], ["x=a__b=c"], ["x=a", "b=c"]], "app")
    assert names == ["x-2.0__y--2.0", "x--2.0__y-2.0", "x-a_b-c", "b-c__x-a"]
    jobs = plan_jobs(EXPERIMENT, [["+seed=1"], ["+seed=-1"]])
    assert [job.name for job in jobs] == ["r8__seed-1", "r16__seed-1", "r8__seed--1", "r16__seed--1"]


def test_an_apps_job_without_overrides_has_the_apps_name_and_excluded_keys_are_left_out():
    assert app_job_names([[]], "train") == ["train"]
    assert app_job_names([["seed=1", "lr=0.1"]], "train", exclude_keys=["seed"]) == ["lr-0.1"]
    launch_settings = ["+ttlaunch/compute=killarney/h100_1x", "+ttlaunch/stagger=fixed_delay", "ttlaunch.stagger.seconds=2", "lr=0.1"]
    assert app_job_names([launch_settings], "train") == ["lr-0.1"]


def test_an_apps_jobs_are_named_by_what_was_swept_not_by_what_the_command_line_fixed():
    # vec-playbook's `trainer.learning_rate=0.01,0.001 trainer.num_epochs=3 user.slurm.account=default`
    fixed = ["trainer.num_epochs", "user.slurm.account"]
    jobs = [
        ["trainer.learning_rate=0.01", "trainer.num_epochs=3", "user.slurm.account=default"],
        ["trainer.learning_rate=0.001", "trainer.num_epochs=3", "user.slurm.account=default"],
    ]
    assert app_job_names(jobs, "hydra_mlp", fixed_keys=fixed) == ["trainer.learning_rate-0.01", "trainer.learning_rate-0.001"]
    # A batch of a longer sweep names its jobs as the whole sweep would (nothing fixed is dropped from one batch only).
    assert app_job_names(jobs[:1], "hydra_mlp", fixed_keys=fixed) == ["trainer.learning_rate-0.01"]
    assert app_job_names([jobs[0][1:]], "hydra_mlp", fixed_keys=fixed) == ["hydra_mlp"], "nothing swept: the app's name"


def test_an_apps_job_names_that_would_clash_or_run_long_end_with_a_digest():
    clashing = app_job_names([["x=a/b"], ["x=a b"], ["x=a_b"]], "app")
    assert len(set(clashing)) == 3 and clashing[2] == "x-a_b"
    assert clashing[0].startswith("x-a-b__") and clashing[1].startswith("x-a-b__")
    assert app_job_names([["x=a/b"], ["x=a b"]], "app") == clashing[:2], "stable across launches"
    (long,) = app_job_names([[f"key{n}=value{n}" for n in range(20)]], "app")
    assert len(long) <= MAX_NAME_LENGTH
