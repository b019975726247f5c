"""The only place that runs SLURM's commands, and the pure parsers of their answers."""
