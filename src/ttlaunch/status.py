"""`python -m ttlaunch.status <sweep dir> [--follow | --rebuild]`: where a sweep stands, from anywhere.

Reads the sweep's jobs.json, asks the scheduler once about the jobs not yet ended (unless
another launcher or monitor holds the sweep: then it shows what that one recorded) and
prints the table. `--follow` resumes monitoring to the end, as the launch would have:
after a detached launch, a Ctrl-C, a crash, or from a new login node. `--rebuild` makes a
new jobs.json for a sweep whose own was damaged (ttlaunch.records.rebuild).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from omegaconf import OmegaConf

from ttlaunch.backend.executors import backend_for
from ttlaunch.base.errors import ExitCode, SweepBusy, TTLaunchError, exit_with
from ttlaunch.inputs.launch_inputs import read_rules
from ttlaunch.inputs.rulebook import Rules
from ttlaunch.monitor.callback import reattach_hint
from ttlaunch.monitor.live_view import render_plain, render_rich
from ttlaunch.monitor.rules import RulesEngine
from ttlaunch.monitor.settings import MonitorSettings
from ttlaunch.monitor.sweep_monitor import Monitor
from ttlaunch.records.jobs_file import SweepState
from ttlaunch.records.ledger import Ledger
from ttlaunch.records.rebuild import rebuild
from ttlaunch.records.sweep_lock import SweepLock
from ttlaunch.scheduler.slurm import SchedulerCommandError
from ttlaunch.submit.monitor_job import JOB_NAME_PREFIX, load_session


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ttlaunch.status", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="the sweep dir (<work_root>/ttlaunch_sweeps/<experiment>)")
    parser.add_argument("--follow", action="store_true", help="monitor until every job ended, then report")
    parser.add_argument("--poll-interval", type=float, default=None, help="seconds between polls (60 on SLURM, 2 locally)")
    parser.add_argument("--live", choices=("auto", "on", "off"), default="auto", help="live table while following")
    parser.add_argument(
        "--rebuild", action="store_true",
        help="a new jobs.json from the event log, the job dirs and the scheduler (the damaged one is kept beside it)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(sys.argv[1:] if argv is None else argv)
    sweep_dir = args.sweep_dir.resolve()
    if args.rebuild:
        return _rebuild(sweep_dir, args.poll_interval)
    try:
        ledger = Ledger.existing(sweep_dir)
    except TTLaunchError as err:  # not a sweep; a damaged state file
        return exit_with(err)
    lock = SweepLock(sweep_dir)
    try:
        lock.acquire()
    except SweepBusy as busy:
        if not (args.follow and ledger.state.monitor_job_id):
            if args.follow:
                return exit_with(busy)
            print(f"(being monitored: {busy.holder}; showing what it recorded)", file=sys.stderr)
            _print_table(ledger.state)
            _print_monitor_job(ledger.state, held=True)
            return ExitCode.OK
        try:  # the monitor job follows the sweep: show what it records, take over if it stops
            _watch_while_held(sweep_dir, lock, args.poll_interval or WATCH_INTERVAL_S)
        except KeyboardInterrupt:
            print("ttlaunch: stopped watching; the monitor job goes on", file=sys.stderr)
            return ExitCode.INTERRUPTED
        ledger = Ledger.existing(sweep_dir)  # as the monitor job left it
        if all(record.status.terminal for record in ledger.state.jobs.values()):  # it finished the sweep
            lock.release()
            _print_monitor_job(ledger.state, held=False)
            completed = all(record.status.as_intended for record in ledger.state.jobs.values())
            return ExitCode.OK if completed else ExitCode.RUNS_FAILED
    try:
        monitor = _monitor(sweep_dir, ledger, args)
    except TTLaunchError as err:  # its rules.json is damaged, its session from another ttlaunch
        lock.release()
        return exit_with(err)
    try:
        if args.follow:
            try:
                monitor.follow()
            except KeyboardInterrupt:
                print(f"ttlaunch: stopped following; jobs keep running. Again: `{reattach_hint(sweep_dir)}`", file=sys.stderr)
                return ExitCode.INTERRUPTED
            except TTLaunchError as err:  # the sweep dir is gone
                return exit_with(err)
            not_completed = [name for name, job in ledger.state.jobs.items() if not job.status.as_intended]
            return ExitCode.RUNS_FAILED if not_completed else ExitCode.OK
        monitor.poll()
        ledger.save()
    finally:
        lock.release()
    _print_table(ledger.state)
    _print_monitor_job(ledger.state, held=False)
    if monitor.active():
        print(f"follow to the end: {reattach_hint(sweep_dir)}")
    return ExitCode.OK


def _monitor(sweep_dir: Path, ledger: Ledger, args: argparse.Namespace) -> Monitor:
    """Following: the monitor of the sweep's saved session (its evaluations and rules submit as
    the launch's did), else one whose rules queue their actions for the next launch. One look:
    a monitor that submits nothing."""
    settings = MonitorSettings(poll_interval_s=args.poll_interval, live=args.live)
    session = load_session(sweep_dir) if args.follow else None
    if session is not None:
        interval = args.poll_interval or session.settings.poll_interval_s
        return session.monitor(ledger, replace(session.settings, poll_interval_s=interval, live=args.live, detach=False))
    rules = _sweep_rules(sweep_dir)
    return Monitor(ledger, settings, reactions=[] if rules.empty else [RulesEngine(rules, ledger)])


def _watch_while_held(sweep_dir: Path, lock: SweepLock, interval_s: float) -> None:
    """While another monitor (the sweep's monitor job) holds the sweep: its table each time it
    changed, read from what it records; returns holding the lock once that monitor let go
    (the sweep ended, or the job did: this process carries on)."""
    shown = ""
    while True:
        state = Ledger.existing(sweep_dir).state
        table = render_plain(state)
        if table != shown:
            _print_table(state)
            shown = table
        time.sleep(interval_s)
        try:
            lock.acquire()
            return
        except SweepBusy:
            continue


def _print_monitor_job(state: SweepState, held: bool) -> None:
    """The sweep's monitor job and where it stands; when it ended before the sweep did, how to finish."""
    job_id = state.monitor_job_id
    if job_id is None:
        return
    backend = backend_for(state.executor)
    try:
        job_state = backend.state_of(job_id)
    except SchedulerCommandError as err:
        print(f"monitor job {job_id}: {backend.runner} did not answer ({err})")
        return
    standing = job_state.value if job_state is not None else "ended (accounting does not yet say how)"
    print(f"monitor job {job_id} ({JOB_NAME_PREFIX}{state.experiment}): {standing}")
    unfinished = any(not record.status.terminal for record in state.jobs.values())
    if (job_state is None or job_state.terminal) and unfinished and not held:
        print(
            f"nothing monitors the sweep now: `{reattach_hint(Path(state.sweep_dir))}` finishes it here, "
            "or the launch command again hands it to a new monitor job"
        )


# How often `--follow` re-reads what the sweep's monitor job recorded, unless --poll-interval says.
WATCH_INTERVAL_S = 10.0


def _rebuild(sweep_dir: Path, poll_interval: float | None) -> int:
    if not sweep_dir.is_dir():
        print(f"ttlaunch: error: {sweep_dir}: no such directory", file=sys.stderr)
        return ExitCode.BAD_INPUT
    try:
        with SweepLock(sweep_dir):
            state, kept = rebuild(sweep_dir)
            if not state.jobs:
                print(f"ttlaunch: error: {sweep_dir}: no submission in its event log or job dirs: nothing to rebuild", file=sys.stderr)
                return ExitCode.BAD_INPUT
            ledger = Ledger(sweep_dir, state)
            ledger.events.write(
                "REBUILD_STATE", "Rebuilt jobs.json",
                ("Details", "damaged files kept as " + (", ".join(str(path) for path in kept) or "(none: jobs.json was missing)")),
                ("Result", f"{len(state.jobs)} jobs from the event log and the job dirs; their states from the scheduler"),
            )
            Monitor(ledger, MonitorSettings(poll_interval_s=poll_interval, live="off")).poll()
            ledger.save()
    except TTLaunchError as err:
        return exit_with(err)
    except (FileExistsError, OSError) as err:
        print(f"ttlaunch: error: {err}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    for path in kept:
        print(f"kept the damaged {path.name.split('.damaged-')[0]} as {path}", file=sys.stderr)
    _print_table(ledger.state)
    print("The same launch command now re-attaches to the jobs still queued or running and submits only runs never submitted.")
    return ExitCode.OK


def _sweep_rules(sweep_dir: Path) -> Rules:
    """The rules the sweep was launched with (its multirun.yaml), if any."""
    saved = sweep_dir / "multirun.yaml"
    if not saved.is_file():
        return Rules()
    config = OmegaConf.load(saved)
    return read_rules(OmegaConf.select(config, "monitoring"), str(saved))


def _print_table(state: SweepState) -> None:
    if sys.stdout.isatty():
        # rich loads only where a table is drawn.
        from rich.console import Console

        Console().print(render_rich(state))
    else:
        print(render_plain(state), end="")


if __name__ == "__main__":
    raise SystemExit(main())
