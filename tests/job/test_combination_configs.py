"""A job's config derived from its combination's is the config Hydra would compose for it."""

from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import OmegaConf

from ttlaunch.job import combination_configs
from ttlaunch.job.combination_configs import CombinationConfigs
from ttlaunch.submit.sweep_jobs import JOB_NAME_KEY, RUN_NAME_KEY

PER_JOB = (RUN_NAME_KEY, JOB_NAME_KEY)


def jobs_of(combination: list[str], runs: list[str]) -> list[list[str]]:
    return [[*combination, f"{RUN_NAME_KEY}={run}", f"{JOB_NAME_KEY}={run}_job"] for run in runs]


def test_each_job_gets_the_config_hydra_composes_for_it():
    with initialize_config_module(config_module="ttlaunch.configs", version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("ttlaunch", ["experiment=demo", "+extra=1,2"], RunMode.MULTIRUN)
        # A run named like a number is a number to Hydra's override parser, and so here.
        jobs = jobs_of(["experiment=demo", "+extra=1"], ["lr1e-3", "1e-3"]) + jobs_of(["experiment=demo", "+extra=2"], ["lr1e-2"])
        composed = CombinationConfigs.compose(loader, master, jobs, PER_JOB)
        assert composed is not None and len(composed.configs) == 2
        for job in jobs:
            derived = composed.config_for(job)
            assert derived is not None
            assert OmegaConf.to_yaml(derived) == OmegaConf.to_yaml(loader.load_sweep_config(master, job))
        assert composed.config_for(jobs[0])[RUN_NAME_KEY] == "lr1e-3" and composed.config_for(jobs[1])[RUN_NAME_KEY] == 0.001
        # A job of another combination (an evaluation's target keys) composes its own.
        assert composed.config_for(["experiment=demo", "+extra=3", f"{RUN_NAME_KEY}=lr1e-3"]) is None


def test_configs_too_big_to_carry_in_every_job_are_left_to_each_job(monkeypatch):
    with initialize_config_module(config_module="ttlaunch.configs", version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("ttlaunch", ["experiment=demo"], RunMode.MULTIRUN)
        jobs = [job for n in range(3) for job in jobs_of(["experiment=demo", f"+extra={n}"], ["a"])]
        one = len(CombinationConfigs.compose(loader, master, jobs[:1], PER_JOB).configs[("experiment=demo", "+extra=0")])
        monkeypatch.setattr(combination_configs, "MAX_BYTES", 2 * one + one // 2)
        assert len(CombinationConfigs.compose(loader, master, jobs[:2], PER_JOB).configs) == 2
        assert CombinationConfigs.compose(loader, master, jobs, PER_JOB) is None
