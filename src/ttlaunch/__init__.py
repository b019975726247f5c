"""ttlaunch: launch and babysit LLM fine-tuning sweeps on SLURM."""

# The one place the version is written (pyproject.toml reads it from here).
__version__ = "0.1.0"


def version_line() -> str:
    """What `ttlaunch --version` prints."""
    return f"ttlaunch {__version__}"
