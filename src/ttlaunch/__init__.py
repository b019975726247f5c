"""ttlaunch: launch and babysit LLM fine-tuning sweeps on SLURM."""

__version__ = "0.1.0"
