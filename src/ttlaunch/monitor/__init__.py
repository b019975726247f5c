"""Watching a sweep: polling, the monitor loop, rules, evaluations, the live view."""
