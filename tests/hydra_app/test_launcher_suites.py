"""Hydra's own launcher test suites (the ones every launcher plugin runs), for ttlaunch's
launchers serving apps that are not ttlaunch's: locally here, on the test cluster in
test_launcher_suites_cluster.py."""

import pytest
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite

pytestmark = pytest.mark.cli


@pytest.mark.parametrize("launcher_name, overrides", [("ttlaunch_local", [])])
class TestLocalLauncher(LauncherTestSuite):
    pass


@pytest.mark.parametrize("task_launcher_cfg, extra_flags", [({}, ["-m", "hydra/launcher=ttlaunch_local"])])
class TestLocalLauncherIntegration(IntegrationTestSuite):
    pass
