"""The end of a sweep (and `ttlaunch report` at any time): checkpoint validation, the
summary (summary.md) with the results table (ttlaunch.records.results), and the pictures
beside it (ttlaunch.records.plots)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ttlaunch.base.files import write_atomically
from ttlaunch.inputs.payload_kinds import PayloadKind
from ttlaunch.records.checkpoints import adapter_file, epoch_dirs
from ttlaunch.records.jobs_file import JobKind, JobRecord, SweepState
from ttlaunch.records.plots import write_pictures
from ttlaunch.records.provenance import PROVENANCE_NAME, last_commits
from ttlaunch.records.pruning_report import pruning_section
from ttlaunch.records.results import results_table
from ttlaunch.records.tracker_file import read_tracker, wandb_run_dirs
from ttlaunch.scheduler.figure_readers import UNKNOWN, shown
from ttlaunch.scheduler.states import JobState

SUMMARY_NAME = "summary.md"
ADAPTER_WEIGHTS = ("adapter_model.pt", "adapter_model.safetensors", "adapter_model.bin")


@dataclass(frozen=True)
class CheckpointCheck:
    ok: bool
    checkpoint: Path | None  # the newest epoch dir, when there is one
    problem: str | None = None


def check_checkpoint(output_dir: Path) -> CheckpointCheck:
    """A finished LoRA run leaves epoch_N/ with adapter weights and adapter_config.json (or
    those in its adapter_weights/, where cruijff_kit's post step moves them)."""
    epochs = epoch_dirs(output_dir)
    if not epochs:
        return CheckpointCheck(False, None, f"no epoch_N/ checkpoint in {output_dir}")
    newest = epochs[-1]
    missing = []
    if not any(adapter_file(newest, name).is_file() for name in ADAPTER_WEIGHTS):
        missing.append("adapter weights")
    if not adapter_file(newest, "adapter_config.json").is_file():
        missing.append("adapter_config.json")
    if missing:
        return CheckpointCheck(False, newest, f"{newest} lacks {' and '.join(missing)}")
    return CheckpointCheck(True, newest)


def checkpoint_checks(state: SweepState) -> dict[str, CheckpointCheck]:
    """The checkpoint of each completed training run whose kind saves epochs (other payloads
    have no checkpoint layout to check)."""
    if state.payload_kind is None or not state.payload_kind.saves_epochs:
        return {}
    return {
        name: check_checkpoint(Path(record.output_dir))
        for name, record in state.jobs.items()
        if record.status is JobState.COMPLETED and record.output_dir and record.kind is JobKind.TRAINING
    }


def draw_pictures(sweep_dir: Path, state: SweepState, curves: Mapping[str, Sequence[tuple[int, float]]]) -> list[Path] | None:
    """The sweep's pictures, written beside summary.md (none shows compute metrics); None
    without matplotlib (the summary then says how to get them)."""
    try:
        return write_pictures(state, curves, sweep_dir)
    except ImportError:
        return None


def write_summary(
    sweep_dir: Path, state: SweepState, checks: dict[str, CheckpointCheck], log_path: Path, pictures: list[Path] | None,
) -> str:
    """Write summary.md (atomically), naming the pictures drawn; its text."""
    summary = render_summary(state, checks, log_path, pictures, last_commits(sweep_dir))
    write_atomically(sweep_dir / SUMMARY_NAME, summary)
    return summary


def render_summary(
    state: SweepState, checks: dict[str, CheckpointCheck], log_path: Path, pictures: Sequence[Path] | None = (),
    code: Sequence[str] = (),
) -> str:
    """`code`: the newest launch's git trees, one line each (ttlaunch.records.provenance)."""
    completed = {name: job for name, job in state.jobs.items() if job.status is JobState.COMPLETED}
    pruned = {name: job for name, job in state.jobs.items() if job.status is JobState.PRUNED}
    others = {name: job for name, job in state.jobs.items() if not job.status.as_intended}
    lines = [f"## ttlaunch: {state.experiment}", ""]
    stopped_early = f", {len(pruned)} pruned (stopped early: behind at a rung)" if pruned else ""
    if others:
        lines.append(f"{len(completed)} of {len(state.jobs)} jobs completed{stopped_early}.")
    else:
        lines.append(f"All {len(state.jobs)} jobs completed{' or were pruned' if pruned else ''}{stopped_early}.")
    lines += ["", "### Final status", "", f"✓ COMPLETED: {len(completed)} runs"]
    lines += [f"  - {name} (Job {job.job_id}) - {job.elapsed or '?'}" for name, job in completed.items()]
    if pruned:
        lines += ["", f"✂ PRUNED: {len(pruned)} runs"]
        lines += [f"  - {name} (Job {job.job_id}) - at rung {job.pruned_at}, after {job.elapsed or '?'}"
                  for name, job in pruned.items()]
    lines += ["", f"✗ NOT COMPLETED: {len(others)} runs"]
    lines += [
        f"  - {name} (Job {job.job_id or 'none'}) - {job.status}{f' ({job.cause.value})' if job.cause else ''}{_why(job)}"
        for name, job in others.items()
    ]
    if state.stopped:
        lines += ["", f"**Stopped early**: {state.stopped}. Queued runs were cancelled and the rest not submitted; "
                  "after a fix, the same launch command submits what was held back."]
    lines += _restarts(state)
    lines += pruning_section(state)
    results = results_table(state, state.sort_by)
    if results:
        lines += ["", *results]
    lines += _pictures(pictures)
    lines += _compute_table(state)
    app = state.payload_kind is PayloadKind.app
    if app:  # an app's job writes what it likes in its dir
        lines += ["", "### Outputs", "", "Job dirs (each job's own output, Hydra's config, logs):"]
        lines += [f"- {name}: `{job.job_dir}`" for name, job in state.jobs.items()]
    else:
        lines += ["", "### Outputs", "", "Checkpoints:"]
        for name in completed:
            check = checks.get(name)
            if check is None:
                lines.append(f"- {name}: {completed[name].output_dir or '?'}")
            elif check.ok:
                lines.append(f"- {name}: `{check.checkpoint}/`")
            else:
                lines.append(f"- {name}: ⚠ {check.problem}")
    lines += _tracker_runs(state)
    if code:
        lines += ["", f"What ran (`{PROVENANCE_NAME}` has every launch's versions and config):", *code]
    lines += ["", "Job logs (stdout / stderr):"]
    lines += [f"- {name}: `{job.stdout}` / `{job.stderr}`" for name, job in state.jobs.items() if job.stdout]
    lines += ["", "### Next steps", ""]
    flagged = [name for name, check in checks.items() if not check.ok]
    never_started = {name: job for name, job in others.items() if not _has_log(job)}
    logs = " ".join(f"`{job.stderr}`" for name, job in others.items() if name not in never_started)
    if logs:
        lines.append(f"- Look at the failed runs' logs: `grep -i error` {logs}")
    for name, job in never_started.items():
        lines.append(f"- {name} never started ({job.status}): {_never_started_reason(job)}")
    if flagged:
        lines.append(f"- Completed without a usable checkpoint: {', '.join(flagged)}: check their output dirs.")
    if app:
        lines.append(
            f"- The same command with `hydra.sweep.dir={state.sweep_dir}` re-attaches to jobs still queued or running and "
            "runs the others again; with `hydra.launcher.relaunch=resume` it skips completed ones (and failed ones, "
            "unless `hydra.launcher.resubmit_failed=true`)."
        )
    else:
        lines.append(
            "- Launching the same command again submits only runs never submitted (and resumes runs ttlaunch "
            "stopped); add `resubmit_failed=true` to submit the failed ones again."
        )
    if state.status_table is not None and Path(state.status_table).is_file():  # cruijff_kit's layout has none
        lines.append(f"- Evaluation and analysis: see the experiment's own plan (`{state.status_table}`).")
    lines.append(f"- The full history is in `{log_path}`" + (f" (and `{state.experiment_log}`)." if state.experiment_log else "."))
    lines.append("")
    return "\n".join(lines)


def _restarts(state: SweepState) -> list[str]:
    """Each restart ttlaunch made of a run that failed, with its cause and what it changed."""
    rows = [
        f"| {name} | {entry.get('after', '?')} | {entry.get('previous_job_id') or '-'} | {entry.get('change') or 'as it was'} | "
        f"{'remediation' if entry.get('by') == 'remediation' else 'rule'} |"
        for name, job in state.jobs.items() for entry in job.restarts
    ]
    if not rows:
        return []
    return ["", "### Restarts", "", "| Run | After | Job that failed | Change | By |", "|---|---|---|---|---|", *rows]


def _tracker_runs(state: SweepState) -> list[str]:
    """Each point's W&B run (ttlaunch.records.tracker_file): its page once a sync named it,
    else its newest offline dir and how to upload it."""
    lines = []
    for name, job in state.jobs.items():
        if job.kind is not JobKind.TRAINING or not job.job_dir:
            continue
        run = read_tracker(Path(job.job_dir))
        dirs = wandb_run_dirs(Path(job.job_dir), run) if run is not None else []
        if job.tracker_url:
            lines.append(f"- {name}: {job.tracker_url}")
        elif run is not None and dirs:
            attempts = f", {len(dirs)} attempts" if len(dirs) > 1 else ""
            lines.append(f"- {name}: run {run.id}, offline in `{dirs[-1]}`{attempts}")
    if not lines:
        return []
    offline = any("offline in" in line for line in lines)
    hint = ["", f"Offline runs reach W&B with `ttlaunch sync {state.sweep_dir}` where there is network."] if offline else []
    return ["", "### W&B runs", "", "One run per point, whatever happened to its jobs:", *lines, *hint]


def _pictures(pictures: Sequence[Path] | None) -> list[str]:
    if pictures is None:
        return ["", "### Pictures", "", "Pictures need matplotlib: `pip install 'ttlaunch[figures]'`, then `ttlaunch report <sweep dir>`."]
    if not pictures:
        return []
    lines = ["", "### Pictures", ""]
    return lines + [f"![{path.stem.replace('_', ' ')}]({path.name})  \n`{path}`" for path in pictures]


def _compute_table(state: SweepState) -> list[str]:
    """What each ended job used, from accounting; `unknown` where the scheduler gave no
    readable figure. Nothing for sweeps without accounting (local jobs)."""
    measured = {name: job.metrics for name, job in state.jobs.items() if job.metrics}
    if not measured:
        return []
    lines = ["", "### Compute", "", "| Run | Wall time | CPU efficiency | Memory used | Memory requested |", "|---|---|---|---|---|"]
    for name, metrics in measured.items():
        wall = metrics.get("wall_time") if isinstance(metrics.get("wall_time"), str) else None
        cells = [
            name, wall or UNKNOWN, shown(metrics.get("cpu_efficiency"), ".2f", "%"),
            shown(metrics.get("memory_used_mb"), ".2f", " MB"), shown(metrics.get("memory_requested_mb"), ".2f", " MB"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _has_log(job: JobRecord) -> bool:
    return bool(job.stderr) and Path(str(job.stderr)).is_file()


def _never_started_reason(job: JobRecord) -> str:
    if job.status is JobState.SUBMIT_FAILED:
        return f"its submission failed: {job.error or 'no reason given'}. Once that is fixed, the same command submits it again."
    if job.error:
        return f"{job.error}; it left no log."
    return "it ended before it ran, and left no log (cancelled while queued?)."


def _why(job: JobRecord) -> str:
    if job.error:
        return f": {job.error}"
    return f" - log: `{job.stderr}`" if job.stderr else ""
