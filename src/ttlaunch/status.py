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
from pathlib import Path

from omegaconf import OmegaConf

from ttlaunch.base.errors import ExitCode, SweepBusy, TTLaunchError, exit_with
from ttlaunch.inputs.composed import read_rules
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
from ttlaunch.scheduler.states import JobState


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
    monitor = Monitor(ledger, MonitorSettings(poll_interval_s=args.poll_interval, live=args.live))
    rules = _sweep_rules(sweep_dir)
    if not rules.empty:
        try:  # without the launcher, follow-ups and restarts stay queued for the next launch
            monitor.reactions.append(RulesEngine(rules, ledger))
        except TTLaunchError as err:  # its rules.json is damaged
            return exit_with(err)
    lock = SweepLock(sweep_dir)
    try:
        lock.acquire()
    except SweepBusy as busy:
        if args.follow:
            return exit_with(busy)
        print(f"(being monitored: {busy.holder}; showing what it recorded)", file=sys.stderr)
        _print_table(ledger.state)
        return ExitCode.OK
    try:
        if args.follow:
            try:
                monitor.follow()
            except KeyboardInterrupt:
                print(f"ttlaunch: stopped following; jobs keep running. Again: `{reattach_hint(sweep_dir)}`", file=sys.stderr)
                return ExitCode.INTERRUPTED
            except TTLaunchError as err:  # the sweep dir is gone
                return exit_with(err)
            not_completed = [name for name, job in ledger.state.jobs.items() if job.status is not JobState.COMPLETED]
            return ExitCode.RUNS_FAILED if not_completed else ExitCode.OK
        monitor.poll()
        ledger.save()
    finally:
        lock.release()
    _print_table(ledger.state)
    if monitor.active():
        print(f"follow to the end: {reattach_hint(sweep_dir)}")
    return ExitCode.OK


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
