"""An app written for hydra-submitit-launcher switches with one line: every setting of that
launcher's own config dataclasses is accepted by ttlaunch's launchers, with its meaning; and
installing ttlaunch leaves an app's own config groups as they are."""

from dataclasses import fields
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf
from ttlaunch.backend.job_requests import SubmititOptions, slurm_request
from ttlaunch.inputs.launch_inputs import read_scheduling
from ttlaunch.inputs.schema import Relaunch, UserConfig
from ttlaunch.submit.plugin_protocols import Launcher, Sweeper

APP_DIR = Path(__file__).parent / "app"

# A value for every field hydra-submitit-launcher has (its SlurmQueueConf, and srun_args of
# its newer releases), as a user's config would set it. A field missing here fails the test.
HSL_VALUES = {
    "submitit_folder": "${hydra.sweep.dir}/.submitit/%j",
    "timeout_min": 30,
    "cpus_per_task": 2,
    "gpus_per_node": 1,
    "tasks_per_node": 1,
    "mem_gb": 4,
    "nodes": 1,
    "name": "lr_sweep",
    "stderr_to_stdout": True,
    "partition": "debug",
    "qos": "normal",
    "comment": "sweep 3",
    "constraint": "x86",
    "exclude": "node9",
    "gres": None,
    "cpus_per_gpu": 2,
    "gpus_per_task": 1,
    "mem_per_gpu": "8G",
    "mem_per_cpu": "1G",
    "account": "default",
    "signal_delay_s": 90,
    "max_num_timeout": 2,
    "additional_parameters": {"mail-type": "END"},
    "array_parallelism": 4,
    "setup": ["echo ready"],
    "srun_args": ["--cpu-bind=none"],
}


def hsl_fields(conf: type) -> list[str]:
    return [field.name for field in fields(conf) if field.name != "_target_"]


def overrides_for(names: list[str]) -> list[str]:
    def value(item: object) -> str:
        if item is None:
            return "null"
        if isinstance(item, bool):
            return str(item).lower()
        if isinstance(item, list):
            return "[" + ",".join(f"'{element}'" for element in item) + "]"
        return f"'{item}'" if isinstance(item, str) else str(item)

    overrides = []
    for name in names:
        given = HSL_VALUES[name]
        if isinstance(given, dict):  # as a config file would merge them
            overrides += [f"+hydra.launcher.{name}.{key}={value(element)}" for key, element in given.items()]
        else:
            overrides.append(f"hydra.launcher.{name}={value(given)}")
    return overrides


def composed(tmp_path: Path, launcher: str, *overrides: str):
    with initialize_config_dir(config_dir=str(APP_DIR), version_base="1.3"):
        return compose(
            "train_app", [f"hydra/launcher={launcher}", f"hydra.sweep.dir={tmp_path}", *overrides], return_hydra_config=True
        )


def test_every_setting_of_the_submitit_slurm_launcher_is_taken_with_its_meaning(tmp_path: Path):
    names = [*hsl_fields(SlurmQueueConf), "srun_args"]
    assert set(names) <= set(HSL_VALUES), f"a hydra-submitit-launcher setting this test does not know: {set(names) - set(HSL_VALUES)}"
    cfg = composed(tmp_path, "ttlaunch_slurm", *overrides_for(names))
    launcher = instantiate(cfg.hydra.launcher)
    assert launcher.max_submitted == 4, "array_parallelism caps the sweep's jobs in the queue"
    assert launcher.sweep_name == "lr_sweep"
    assert launcher.submitit_options == SubmititOptions(
        stderr_to_stdout=True, srun_args=("--cpu-bind=none",), folder=f"{tmp_path}/.submitit/%j"
    )
    scheduling = read_scheduling(cfg, cfg.hydra, groups="ttlaunch/")
    assert (scheduling.requeue.enabled, scheduling.requeue.max_num_timeout) == (True, 2)
    request = slurm_request(
        "lr_sweep", scheduling.compute, scheduling.requeue, UserConfig(), launcher.signal_delay_s,
        scheduling.compute_source, launcher.submitit_options,
    )
    script = request.script(tmp_path / "job" / "submitit")
    for line in (
        "--time=30", "--cpus-per-task=2", "--gres=gpu:1", "--ntasks-per-node=1", "--mem=4GB", "--nodes=1",
        "--partition=debug", "--qos=normal", "--comment='sweep 3'", "--constraint=x86", "--exclude=node9",
        "--cpus-per-gpu=2", "--gpus-per-task=1", "--mem-per-gpu=8G", "--mem-per-cpu=1G", "--account=default",
        "--signal=USR2@90", "--mail-type=END", "--job-name=lr_sweep",
    ):
        assert f"#SBATCH {line}\n" in script, line
    assert "--error" not in script, "stderr_to_stdout: one log"
    assert "echo ready\n" in script and "--cpu-bind=none " in script
    parameters = request.submitit_parameters()
    assert (parameters["stderr_to_stdout"], parameters["srun_args"], parameters["setup"][0]) == (
        True, ["--cpu-bind=none"], "echo ready",
    )


def test_the_launcher_and_sweeper_hydra_builds_have_every_member_their_protocols_name(tmp_path: Path):
    """mypy cannot: the launcher's base class (hydra-submitit-launcher's) is untyped."""
    from hydra_plugins.ttlaunch_launcher.sweeper import TTLaunchSweeper

    cfg = composed(tmp_path, "ttlaunch_slurm")
    launcher = instantiate(cfg.hydra.launcher)
    launcher.config = cfg  # as Hydra's setup() gives it: the launcher's relaunch default reads it
    assert isinstance(launcher, Launcher) and isinstance(launcher.relaunch, Relaunch)
    missing = [name for name in Launcher.__annotations__ if not hasattr(launcher, name)]
    assert missing == []
    assert isinstance(TTLaunchSweeper(), Sweeper)


def test_every_setting_of_the_submitit_local_launcher_is_taken(tmp_path: Path):
    names = hsl_fields(LocalQueueConf)
    cfg = composed(tmp_path, "ttlaunch_local", *overrides_for(names))
    launcher = instantiate(cfg.hydra.launcher)
    assert (launcher.executor, launcher.sweep_name, launcher.submitit_options.stderr_to_stdout) == ("local", "lr_sweep", True)
    assert read_scheduling(cfg, cfg.hydra, groups="ttlaunch/").compute.timeout_min == 30


def test_use_srun_false_starts_the_task_in_the_batch_script_itself(tmp_path: Path):
    cfg = composed(tmp_path, "ttlaunch_slurm", "hydra.launcher.use_srun=false")
    launcher = instantiate(cfg.hydra.launcher)
    scheduling = read_scheduling(cfg, cfg.hydra, groups="ttlaunch/")
    request = slurm_request("x", scheduling.compute, scheduling.requeue, UserConfig(), 120, "test", launcher.submitit_options)
    command = request.script(tmp_path).split("# command\n", 1)[1]
    assert "srun --unbuffered" not in command and "submitit.core._submit" in command
    assert request.submitit_parameters()["use_srun"] is False


def test_an_apps_requeue_flags_decide_requeue_and_are_not_passed_twice(tmp_path: Path):
    on = composed(tmp_path, "ttlaunch_slurm", "+hydra.launcher.additional_parameters.requeue=''")
    scheduling = read_scheduling(on, on.hydra, groups="ttlaunch/")
    assert scheduling.requeue.enabled and "requeue" not in scheduling.compute.additional_parameters
    off = composed(tmp_path, "ttlaunch_slurm", "+hydra.launcher.additional_parameters.no-requeue=''")
    assert not read_scheduling(off, off.hydra, groups="ttlaunch/").requeue.enabled


APP_WITH_PRESETS = {
    "app.yaml": "defaults:\n  - compute: killarney/l40s_1x\n  - requeue: 'off'\n  - _self_\nlr: 0.1\n",
    "compute/killarney/l40s_1x.yaml": "mem_gb: 120\ntimeout_min: 60\nslurm:\n  partition: null\n",
    "requeue/off.yaml": "# @package _global_\nhydra:\n  launcher:\n    additional_parameters:\n      no-requeue: ''\n",
}


def test_an_apps_own_groups_are_not_shadowed_and_ttlaunchs_are_there_under_their_prefix(tmp_path: Path):
    app = tmp_path / "app"
    for name, text in APP_WITH_PRESETS.items():
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        (app / name).write_text(text)
    with initialize_config_dir(config_dir=str(app), version_base="1.3"):
        own = compose("app", ["hydra/launcher=submitit_slurm"], return_hydra_config=True)
        chosen = compose("app", ["+ttlaunch/compute=killarney/l40s_1x", "+ttlaunch/requeue=on"], return_hydra_config=True)
    assert own.compute == {"mem_gb": 120, "timeout_min": 60, "slurm": {"partition": None}}, "the app's own preset, whole"
    assert "ttlaunch" not in own and own.hydra.launcher.additional_parameters == {"no-requeue": ""}
    # ttlaunch's preset of the same name, chosen under the prefix, sits beside the app's own and picks the launcher.
    assert (chosen.compute.mem_gb, chosen.ttlaunch.compute.mem_gb, chosen.ttlaunch.compute.partition) == (120, 64, "gpubase_l40s_b2")
    assert chosen.hydra.runtime.choices["hydra/launcher"] == "ttlaunch_slurm"
    scheduling = read_scheduling(chosen, chosen.hydra, groups="ttlaunch/")
    assert (scheduling.compute.mem_gb, scheduling.compute_source) == (64, "ttlaunch/compute=killarney/l40s_1x")
    assert scheduling.requeue.enabled is False, "the app's own no-requeue flag still speaks last"


@pytest.mark.parametrize("group", ["compute", "requeue", "stagger"])
def test_ttlaunchs_groups_are_listed_under_the_prefix_only(tmp_path: Path, group: str):
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(config_dir=str(APP_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        assert loader.get_group_options(f"ttlaunch/{group}"), f"ttlaunch/{group} has options"
        assert not loader.get_group_options(group), f"{group} is not taken from the app"
