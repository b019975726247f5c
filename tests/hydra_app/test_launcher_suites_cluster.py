"""Hydra's own launcher test suites for ttlaunch_slurm, on the project's test cluster, with
the resources named as hydra-submitit-launcher names them (hydra.launcher.<name>)."""

import pytest
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

ON_THE_TEST_CLUSTER = [
    "hydra.launcher.partition=debug", "hydra.launcher.mem_gb=1", "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.timeout_min=10", "hydra.callbacks.monitor.poll_interval_s=2", "hydra.callbacks.monitor.end_check_s=0.5",
]


@pytest.mark.parametrize("launcher_name, overrides", [("ttlaunch_slurm", ON_THE_TEST_CLUSTER)])
class TestSlurmLauncher(LauncherTestSuite):
    pass


@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags", [({}, ["-m", "hydra/launcher=ttlaunch_slurm", *ON_THE_TEST_CLUSTER])]
)
class TestSlurmLauncherIntegration(IntegrationTestSuite):
    pass
