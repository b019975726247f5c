"""Config composition, and presets really reaching the sbatch script."""

import shlex
from pathlib import Path

import pytest

from ttlaunch.backend.job_requests import slurm_request
from ttlaunch.base.errors import InputError
from ttlaunch.inputs.launch_inputs import read_inputs
from ttlaunch.inputs.schema import Executor
from ttlaunch.inputs.summary import RunType

SLURM_PRESETS = {
    "killarney/l40s_1x": ("gpubase_l40s_b2", "gpu:l40s:1", "64GB"),
    "killarney/l40s_2x": ("gpubase_l40s_b2", "gpu:l40s:2", "128GB"),
    "killarney/h100_1x": ("gpubase_h100_b2", "gpu:h100:1", "256GB"),
    "killarney/h100_2x": ("gpubase_h100_b2", "gpu:h100:2", "512GB"),
    "killarney/h100_4x": ("gpubase_h100_b2", "gpu:h100:4", "1000GB"),
    "bon_echo/a40_1x": ("a40", "gpu:a40:1", "40GB"),
    "bon_echo/a40_4x": ("a40", "gpu:a40:4", "160GB"),
    "bon_echo/a100_1x": ("a100", "gpu:a100:1", "80GB"),
    "bon_echo/cpu_1x": ("cpu", None, "16GB"),
    "testcluster/cpu_1x": ("debug", None, "1GB"),
}


def script_for(compose_config, *overrides: str) -> tuple[str, list[str]]:
    cfg = compose_config("experiment=cap_4L", *overrides)
    inputs = read_inputs(cfg, cfg.hydra)
    request = slurm_request(
        "rank8_lr1e-5", inputs.compute, inputs.requeue, inputs.user, cfg.hydra.launcher.signal_delay_s, "t"
    )
    lines = request.script(Path("/sweep/rank8_lr1e-5/submitit"), python="python").splitlines()
    return "\n".join(lines), [line for line in lines if line.startswith("#SBATCH")]


def test_the_monitor_callback_is_typed_with_the_settings_defaults_written_once(compose_config, tmp_path):
    from hydra.utils import instantiate

    from ttlaunch.monitor.settings import MonitorSettings
    from ttlaunch.monitor.sweep_monitor import Monitor
    from ttlaunch.records.ledger import Ledger

    monitor = instantiate(compose_config("experiment=demo").hydra.callbacks.monitor)
    assert monitor.settings() == MonitorSettings()
    monitor = instantiate(compose_config("experiment=demo", "detach=true", "hydra.callbacks.monitor.end_check_s=0").hydra.callbacks.monitor)
    assert monitor.settings() == MonitorSettings(detach=True, end_check_s=0)
    ledger = Ledger.open(tmp_path, "sweep")
    ledger.state.executor = Executor.slurm
    assert Monitor(ledger, MonitorSettings()).poll_interval_s == 60 and Monitor(ledger, MonitorSettings(poll_interval_s=5)).poll_interval_s == 5


def test_local_default_needs_no_slurm(compose_config):
    cfg = compose_config("experiment=demo")
    assert cfg.hydra.launcher.executor == "local"
    assert cfg.hydra.sweeper._target_.endswith("TTLaunchSweeper")
    assert cfg.hydra.runtime.choices["compute"] == "local/cpu"


@pytest.mark.parametrize("preset", sorted(SLURM_PRESETS))
@pytest.mark.parametrize("requeue", ["on", "off"])
def test_every_slurm_preset_reaches_the_sbatch_script(compose_config, preset, requeue):
    partition, gres, mem = SLURM_PRESETS[preset]
    cfg = compose_config("experiment=cap_4L", f"compute={preset}")
    assert cfg.hydra.launcher.executor == "slurm"
    _, flags = script_for(compose_config, f"compute={preset}", f"requeue={requeue}", "user.slurm.account=my-acct")
    assert f"#SBATCH --partition={partition}" in flags
    assert f"#SBATCH --mem={mem}" in flags
    assert "#SBATCH --account=my-acct" in flags
    assert "#SBATCH --job-name=rank8_lr1e-5" in flags
    assert any(flag.startswith("#SBATCH --time=") for flag in flags)
    if gres:
        assert f"#SBATCH --gres={gres}" in flags
    expected, other = ("--requeue", "--no-requeue") if requeue == "on" else ("--no-requeue", "--requeue")
    assert f"#SBATCH {expected}" in flags and f"#SBATCH {other}" not in flags


def test_requeue_on_computes_the_jobs_budget_once_and_exports_it_to_the_job(compose_config):
    from ttlaunch.job.requeue import RequeuePolicy

    cfg = compose_config("experiment=cap_4L", "compute=killarney/h100_1x", "requeue=on")
    inputs = read_inputs(cfg, cfg.hydra)
    request = slurm_request("r", inputs.compute, inputs.requeue, inputs.user, 120, "t")
    assert request.requeue_policy == RequeuePolicy(max_num_timeout=3, grace_s=60, time_limit_s=720 * 60, signal_delay_s=120)
    assert request.time_limit_s == 720 * 60
    export = [line for line in request.submitit_parameters()["setup"] if "TTLAUNCH_REQUEUE_POLICY" in line]
    variable, value = shlex.split(export[0])[1].split("=", 1)  # as the shell reads the line
    assert RequeuePolicy.from_environment({variable: value}) == request.requeue_policy
    cfg = compose_config("experiment=cap_4L", "compute=killarney/h100_1x", "requeue=off")
    inputs = read_inputs(cfg, cfg.hydra)
    request = slurm_request("r", inputs.compute, inputs.requeue, inputs.user, 120, "t")
    assert request.requeue_policy is None and "setup" not in request.submitit_parameters()


def test_qos_and_time_limit_from_the_preset_and_command_line(compose_config):
    _, flags = script_for(compose_config, "compute=bon_echo/a40_1x", "compute.timeout_min=90")
    assert "#SBATCH --qos=normal" in flags
    assert "#SBATCH --time=90" in flags


def test_user_extra_parameters_merge_with_the_preset_and_are_never_dropped(compose_config):
    _, flags = script_for(
        compose_config,
        "compute=bon_echo/a40_1x",
        "+compute.additional_parameters.exclusive=true",
        "+user.slurm.additional_parameters.mail-type=END",
        "+user.slurm.additional_parameters.qos=m2",
    )
    assert "#SBATCH --exclusive" in flags
    assert "#SBATCH --mail-type=END" in flags
    assert "#SBATCH --qos=m2" in flags and "#SBATCH --qos=normal" not in flags


def test_user_replacing_a_preset_value_is_reported(compose_config):
    cfg = compose_config("experiment=cap_4L", "compute=bon_echo/a40_1x", "+user.slurm.additional_parameters.qos=m2")
    inputs = read_inputs(cfg, cfg.hydra)
    request = slurm_request("r", inputs.compute, inputs.requeue, inputs.user, 120, "t")
    assert request.notes == ("additional_parameters.qos=m2 replaces qos=normal",)


def test_requeue_cannot_be_smuggled_in_as_an_extra_parameter(compose_config):
    cfg = compose_config("experiment=cap_4L", "compute=killarney/h100_1x", "+user.slurm.additional_parameters.requeue=true")
    inputs = read_inputs(cfg, cfg.hydra)
    with pytest.raises(InputError, match="requeue=on"):
        slurm_request("r", inputs.compute, inputs.requeue, inputs.user, 120, "t")


def test_a_misspelt_preset_key_is_an_error_naming_the_preset(compose_config):
    cfg = compose_config("experiment=cap_4L", "compute=killarney/h100_1x", "+compute.memgb=3")
    with pytest.raises(InputError) as caught:
        read_inputs(cfg, cfg.hydra)
    assert caught.value.source == "compute=killarney/h100_1x"
    assert "memgb" in caught.value.field


def test_cap_4L_is_rank_by_lr_plus_a_control(compose_config):
    cfg = compose_config("experiment=cap_4L")
    experiment = read_inputs(cfg, cfg.hydra).experiment
    fine_tuned = experiment.fine_tuned
    assert {(run.parameters["lora_rank"], run.parameters["lr"]) for run in fine_tuned} == {
        (rank, lr) for rank in (8, 16, 32, 64) for lr in (1e-5, 5e-5)
    }
    assert [run.type for run in experiment.runs].count(RunType.CONTROL) == 1
    assert experiment.source.endswith("experiment/cap_4L.yaml")


def test_sweep_dir_is_stable_per_experiment(compose_config):
    cfg = compose_config("experiment=cap_4L", "paths.work_root=/scratch/me")
    assert cfg.hydra.sweep.dir == "/scratch/me/ttlaunch_sweeps/cap_4L_lora_lr_sweep"
    cfg = compose_config("experiment=cap_4L", "paths.work_dir=/elsewhere")
    assert cfg.hydra.sweep.dir == "/elsewhere"


def test_a_scaffolded_experiment_dir_is_read_in_place(compose_config, tmp_path: Path):
    scaffold = tmp_path / "cap_2025"
    (scaffold / "r1").mkdir(parents=True)
    (scaffold / "experiment_summary.yaml").write_text(
        "experiment: {name: cap_2025}\nruns: [{name: r1, type: fine-tuned, parameters: {lora_rank: 4}}]\n"
    )
    cfg = compose_config(f"hydra.searchpath=[ttlaunch-experiments://{tmp_path}]", "experiment=cap_2025")
    experiment = read_inputs(cfg, cfg.hydra).experiment
    assert experiment.source == str(scaffold / "experiment_summary.yaml")
    assert experiment.directory == scaffold



def test_a_run_may_change_its_own_compute_fields(compose_config, tmp_path: Path):
    cfg = compose_config("experiment=cap_4L", "compute=killarney/h100_1x")
    inputs = read_inputs(cfg, cfg.hydra)
    from ttlaunch.inputs.launch_inputs import LaunchInputs
    from ttlaunch.inputs.summary import parse_experiment

    experiment = parse_experiment(
        {"experiment": {"name": "x"}, "runs": [{"name": "big", "type": "fine-tuned", "compute": {"mem_gb": 512, "partition": "p2"}}]},
        "x.yaml",
    )
    changed = LaunchInputs(**{**inputs.__dict__, "experiment": experiment})
    compute = changed.compute_for("big")
    assert (compute.mem_gb, compute.partition, compute.gpus_per_node, compute.gpu_type) == (512, "p2", 1, "h100")
    bad = parse_experiment(
        {"experiment": {"name": "x"}, "runs": [{"name": "b", "type": "fine-tuned", "compute": {"memory": 1}}]}, "x.yaml"
    )
    with pytest.raises(InputError) as caught:
        LaunchInputs(**{**inputs.__dict__, "experiment": bad}).compute_for("b")
    assert caught.value.source == "x.yaml" and caught.value.field.startswith("runs.b.compute")


def test_sweeps_go_under_home_unless_the_preset_or_the_command_line_says_otherwise(compose_config, monkeypatch):
    monkeypatch.setenv("HOME", "/home/someone")
    local = compose_config("experiment=demo")
    assert local.paths.work_root == "/home/someone/ttlaunch"  # the local preset names no work_root
    assert local.paths.work_dir == "/home/someone/ttlaunch/ttlaunch_sweeps/demo"
    killarney = compose_config("experiment=demo", "compute=killarney/h100_1x")
    assert killarney.paths.work_root.startswith("/scratch/")
    assert compose_config("experiment=demo", "paths.work_root=/elsewhere").paths.work_dir == "/elsewhere/ttlaunch_sweeps/demo"


@pytest.mark.parametrize(
    ("override", "field", "message"),
    [
        ("compute.timeout_min=0", "compute.timeout_min", "must be at least 1, got 0"),
        ("compute.mem_gb=-4", "compute.mem_gb", "must be more than 0, got -4.0"),
        ("compute.cpus_per_task=0", "compute.cpus_per_task", "must be at least 1, got 0"),
        ("compute.gpus_per_node=-1", "compute.gpus_per_node", "must be at least 0, got -1"),
        ("compute.nodes=0", "compute.nodes", "must be at least 1, got 0"),
    ],
)
def test_no_zero_or_negative_resources(compose_config, override, field, message):
    cfg = compose_config("experiment=demo", override)
    with pytest.raises(InputError) as caught:
        read_inputs(cfg, cfg.hydra)
    assert (caught.value.source, caught.value.field, caught.value.message) == ("compute=local/cpu", field, message)


@pytest.mark.parametrize("command", ["[python,-c,true]", "[sleep,null]", "[sh,[-c,x]]"])
def test_an_argv_item_that_is_not_a_word_is_an_error(compose_config, command):
    cfg = compose_config("experiment=demo", "payload=command", f"payload.command={command}")
    with pytest.raises(InputError) as caught:
        read_inputs(cfg, cfg.hydra)
    assert caught.value.source == "payload=command" and caught.value.field.startswith("payload.command[")
    assert "quote it" in caught.value.message
    cfg = compose_config("experiment=demo", "payload=command", "payload.command=[python,-c,'true']")
    assert read_inputs(cfg, cfg.hydra).payload.command == ["python", "-c", "true"]


def test_the_gpu_count_is_stated_once_and_a_gres_that_disagrees_is_an_error(compose_config):
    from ttlaunch.backend.job_requests import slurm_request

    cfg = compose_config("experiment=cap_4L", "compute=bon_echo/a40_4x", "compute.gpus_per_node=2")
    inputs = read_inputs(cfg, cfg.hydra)
    request = slurm_request("r", inputs.compute, inputs.requeue, inputs.user, 120, "c")
    assert (request.gres, request.gpus_per_node) == ("gpu:a40:2", None)
    cfg = compose_config("experiment=cap_4L", "compute=bon_echo/a40_4x", "compute.gres=gpu:a40:2")
    with pytest.raises(InputError) as caught:
        read_inputs(cfg, cfg.hydra)
    assert caught.value.field == "compute.gres"
    assert caught.value.message.startswith("gpu:a40:2 asks for 2 GPUs, but compute.gpus_per_node is 4")
    cfg = compose_config("experiment=cap_4L", "compute=killarney/h100_2x", "compute.gpu_request=gpus_per_node")
    inputs = read_inputs(cfg, cfg.hydra)
    request = slurm_request("r", inputs.compute, inputs.requeue, inputs.user, 120, "c")
    assert (request.gres, request.gpus_per_node) == (None, "h100:2")
