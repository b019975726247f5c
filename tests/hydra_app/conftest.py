"""Fixtures of the tests of ttlaunch's launchers serving any Hydra app."""

import pytest


@pytest.fixture(autouse=True)
def hydra_default_version_base():
    """Hydra's launcher suites expect its defaults for an app that states no version_base
    (1.1: jobs chdir to their output dir); importing ttlaunch's own app sets 1.3 for the session."""
    from hydra.version import VersionBase, __compat_version__

    versions = VersionBase.instance()
    before = versions.getbase()
    versions.setbase(__compat_version__)
    yield
    versions.version_base = before  # as it was, set or not
