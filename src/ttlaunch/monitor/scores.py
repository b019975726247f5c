"""An evaluation job's scores per task, from the logs inspect wrote in its output dir, read
with inspect's own log reader (the `eval` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

if TYPE_CHECKING:
    from inspect_ai.log import EvalLog


def _of_task(registry_name: str, task: str) -> bool:
    """inspect's registry name of a log's task names the summary's task (`capitalize`, or a
    package's `inspect_evals/gsm8k` for `gsm8k`)."""
    return registry_name == task or registry_name.endswith(f"/{task}")


def read_scores(output_dir: Path, tasks: Sequence[str]) -> tuple[dict[str, dict[str, object]], dict[str, str]]:
    """Each task's scores from its newest log ({"<task>": {"metrics": {"<scorer>/<metric>":
    value}, "samples": N, "log": path}}), and why each other task has none: no log, a log
    of an evaluation that did not succeed, no scores. A job of one task has its logs all its own."""
    try:
        # inspect-ai (an extra) loads only where scores are read.
        from inspect_ai.log import list_eval_logs, read_eval_log
    except ImportError:
        why = "inspect-ai is not installed where ttlaunch monitors (pip install 'ttlaunch[eval]'): no log reader"
        return {}, {task: why for task in tasks}
    logs = [(info, read_eval_log(info, header_only=True)) for info in (list_eval_logs(str(output_dir)) if output_dir.is_dir() else [])]
    scores: dict[str, dict[str, object]] = {}
    problems: dict[str, str] = {}
    for task in tasks:
        own = [(info, log) for info, log in logs if len(tasks) == 1 or _of_task(log.eval.task_registry_name or "", task)]
        if not own:
            problems[task] = f"the evaluation left no inspect log in {output_dir}"
            continue
        info, log = max(own, key=lambda pair: pair[0].mtime or 0)
        found, problem = _scores_of(log, info.name.removeprefix("file://"))
        if found is not None:
            scores[task] = found
        else:
            problems[task] = str(problem)
    return scores, problems


def _scores_of(log: EvalLog, path: str) -> tuple[dict[str, object] | None, str | None]:
    """One log's scores, or why it has none."""
    if log.status != "success":
        error = f": {log.error.message}" if log.error is not None else ""
        return None, f"inspect's log {path} says the evaluation ended {log.status}{error}"
    if log.results is None or not log.results.scores:
        return None, f"inspect's log {path} has no scores"
    metrics = {
        f"{score.name}/{name}": metric.value for score in log.results.scores for name, metric in score.metrics.items()
    }
    return {"metrics": metrics, "samples": log.results.completed_samples, "log": path}, None


def headline(scores: Mapping[str, Mapping[str, object]], tasks: Sequence[str]) -> str:
    """`includes/accuracy 0.5 (2 samples)`: the first metric of the first scorer, of each
    task (named, when the job has several)."""
    lines = []
    for task, found in scores.items():
        metrics = found.get("metrics")
        if not isinstance(metrics, Mapping) or not metrics:
            continue
        name, value = next(iter(metrics.items()))
        shown = f"{value:.4g}" if isinstance(value, (int, float)) else str(value)
        lines.append(f"{task + ': ' if len(tasks) > 1 else ''}{name} {shown} ({found.get('samples', '?')} samples)")
    return "; ".join(lines) or "no scores"
