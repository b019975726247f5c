"""Submitting a sweep, in the launching process: planning, checks, submission, stagger, SLURM requests."""
