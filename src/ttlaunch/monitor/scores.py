"""An evaluation job's scores, from the log inspect wrote in its output dir, read with
inspect's own log reader (the `eval` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping


def read_scores(output_dir: Path) -> tuple[dict[str, object] | None, str | None]:
    """({"metrics": {"<scorer>/<metric>": value}, "samples": N, "log": path}, None), or
    (None, why there are none): no log, a log of an evaluation that did not succeed, no scores."""
    try:
        # inspect-ai (an extra) loads only where scores are read.
        from inspect_ai.log import list_eval_logs, read_eval_log
    except ImportError:
        return None, "inspect-ai is not installed where ttlaunch monitors (pip install 'ttlaunch[eval]'): no log reader"
    logs = list_eval_logs(str(output_dir)) if output_dir.is_dir() else []
    if not logs:
        return None, f"the evaluation left no inspect log in {output_dir}"
    newest = max(logs, key=lambda info: info.mtime or 0)
    log = read_eval_log(newest, header_only=True)
    path = newest.name.removeprefix("file://")
    if log.status != "success":
        error = f": {log.error.message}" if log.error is not None else ""
        return None, f"inspect's log {path} says the evaluation ended {log.status}{error}"
    if log.results is None or not log.results.scores:
        return None, f"inspect's log {path} has no scores"
    metrics = {
        f"{score.name}/{name}": metric.value for score in log.results.scores for name, metric in score.metrics.items()
    }
    return {"metrics": metrics, "samples": log.results.completed_samples, "log": path}, None


def headline(scores: dict[str, object]) -> str:
    """`includes/accuracy 0.5 (2 samples)`: the first metric of the first scorer."""
    metrics = scores.get("metrics")
    if not isinstance(metrics, Mapping) or not metrics:
        return "no scores"
    name, value = next(iter(metrics.items()))
    shown = f"{value:.4g}" if isinstance(value, (int, float)) else str(value)
    return f"{name} {shown} ({scores.get('samples', '?')} samples)"
