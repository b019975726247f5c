"""What runs inside each job: the task, resume decision, requeue on SLURM's warning, preparation, GPU sampling."""
