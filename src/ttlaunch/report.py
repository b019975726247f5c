"""`ttlaunch report SWEEP_DIR` (also `python -m ttlaunch.report`): the sweep's results table,
pictures and summary.md, written again from its files: for a sweep still running, one
launched elsewhere, or another order (`--sort-by`). jobs.json is read, never written: the
training progress is brought up to date from the jobs' output for this report only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ttlaunch.base.errors import ExitCode, TTLaunchError, exit_with
from ttlaunch.monitor.poll_failures import Containment
from ttlaunch.monitor.training import TrainingWatch, training_curves
from ttlaunch.records.ledger import Ledger
from ttlaunch.records.results import result_rows, results_table, sort_columns
from ttlaunch.records.sweep_summary import checkpoint_checks, draw_pictures, write_summary


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ttlaunch report", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="the sweep's dir (it holds jobs.json)")
    parser.add_argument("--sort-by", help="the results' order, best first (default: the launch's report.sort_by)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(sys.argv[1:] if argv is None else argv)
    sweep_dir = args.sweep_dir.resolve()
    try:
        ledger = Ledger.existing(sweep_dir)
    except TTLaunchError as err:  # not a sweep; a damaged state file
        return exit_with(err)
    state = ledger.state
    if args.sort_by is not None:
        parameters = (name for record in state.jobs.values() for name in record.submitted_with.get("parameters", {}))
        columns = sort_columns(parameters, (task for row in result_rows(state) for task in row.scores))
        if args.sort_by not in columns:
            print(f"ttlaunch: error: --sort-by {args.sort_by}: one of {', '.join(columns)}", file=sys.stderr)
            return ExitCode.BAD_INPUT
        state.sort_by = args.sort_by
    TrainingWatch(ledger).read(Containment(ledger.events, sweep_dir))
    try:
        pictures = draw_pictures(sweep_dir, state, training_curves(state))
        write_summary(sweep_dir, state, checkpoint_checks(state), ledger.events.path, pictures)
    except OSError as err:
        print(f"ttlaunch: error: {sweep_dir}: cannot write the report: {err}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    print("\n".join(results_table(state, state.sort_by)[2:]))
    print(f"\nsummary: {sweep_dir / 'summary.md'}")
    for path in pictures or []:
        print(f"picture: {path}")
    return ExitCode.OK


if __name__ == "__main__":
    raise SystemExit(main())
