"""Where jobs run: SLURM or this machine's local executor, behind one contract (contract.JobBackend)
that submits, observes, waits for ends, cancels and stops jobs; and what a job asks for (requests)."""
