"""A sweep's own files: the event log, jobs.json, the status table, summary.md, the lock."""
