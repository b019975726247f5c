"""What a job asks the scheduler for, in ttlaunch's app or any other: the compute preset (if
chosen), the requeue choice, and the launcher's settings named as hydra-submitit-launcher
names them."""

import pytest
from omegaconf import OmegaConf

from ttlaunch.base.errors import InputError
from ttlaunch.inputs.launch_inputs import read_scheduling

LAUNCHER = {"executor": "slurm", "max_num_timeout": None, "partition": None, "mem_gb": None, "comment": None}


def configs(cfg: dict, choices: dict, **launcher):
    hydra = OmegaConf.create({"runtime": {"choices": {"hydra/launcher": "ttlaunch_slurm", **choices}}, "launcher": {**LAUNCHER, **launcher}})
    return OmegaConf.create(cfg), hydra


def test_an_app_without_a_preset_asks_for_the_defaults_and_is_requeued_on_preemption_only():
    scheduling = read_scheduling(*configs({"lr": 0.1}, {}))
    assert (scheduling.compute.timeout_min, scheduling.compute.partition, scheduling.compute_source) == (
        60, None, "hydra/launcher=ttlaunch_slurm",
    )
    assert (scheduling.requeue.enabled, scheduling.requeue.max_num_timeout) == (True, 0)
    local = read_scheduling(*configs({}, {}, executor="local"))
    assert not local.requeue.enabled


def test_the_launchers_settings_win_over_the_preset_and_unnamed_flags_join_the_sbatch_flags():
    preset = {"compute": {"partition": "gpubase", "mem_gb": 64, "additional_parameters": {"exclusive": True}}}
    scheduling = read_scheduling(*configs(preset, {"compute": "killarney/h100_1x"}, partition="a40", comment="sweep 3"))
    compute = scheduling.compute
    assert (compute.partition, compute.mem_gb, scheduling.compute_source) == ("a40", 64, "compute=killarney/h100_1x")
    assert compute.additional_parameters == {"exclusive": True, "comment": "sweep 3"}


def test_a_requeue_choice_is_read_and_max_num_timeout_set_on_the_launcher_wins():
    cfg = {"requeue": {"enabled": True, "max_num_timeout": 3, "grace_s": 30}}
    assert read_scheduling(*configs(cfg, {"requeue": "on"})).requeue.max_num_timeout == 3
    assert read_scheduling(*configs(cfg, {"requeue": "on"}, max_num_timeout=1)).requeue.max_num_timeout == 1


def test_an_impossible_launcher_setting_is_one_error_naming_it():
    with pytest.raises(InputError, match="hydra.launcher.mem_gb: must be more than 0"):
        read_scheduling(*configs({}, {}, mem_gb=0))


def test_in_ttlaunchs_own_app_the_launchers_settings_win_over_the_compute_preset(compose_config):
    from ttlaunch.inputs.launch_inputs import read_inputs

    cfg = compose_config("experiment=cap_4L", "compute=killarney/h100_1x", "hydra.launcher.timeout_min=30", "hydra.launcher.qos=m2")
    inputs = read_inputs(cfg, cfg.hydra)
    assert (inputs.compute.timeout_min, inputs.compute.qos, inputs.compute.partition) == (30, "m2", "gpubase_h100_b2")
