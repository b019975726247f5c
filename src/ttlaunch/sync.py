"""`ttlaunch sync SWEEP_DIR` (also `python -m ttlaunch.sync`): hand every offline W&B run of
the sweep's points to `wandb sync` now, as the monitor does by itself where it runs with
network access (ttlaunch.monitor.tracker_sync), the evaluations' scores added first. Run it where the network is (the login node)
for a detached sweep, or one launched with tracker.sync=off. jobs.json is read, never written
(a monitor may hold it): each run's W&B page is printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ttlaunch.base.errors import ExitCode, TTLaunchError, exit_with
from ttlaunch.monitor.tracker_sync import offline_dirs, scores_to_log, sync_round, training_dirs
from ttlaunch.records.ledger import Ledger


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ttlaunch sync", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="the sweep's dir (it holds jobs.json)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(sys.argv[1:] if argv is None else argv)
    sweep_dir = args.sweep_dir.resolve()
    try:
        ledger = Ledger.existing(sweep_dir)
    except TTLaunchError as err:  # not a sweep; a damaged state file
        return exit_with(err)
    jobs = ledger.state.jobs
    training = training_dirs(jobs)
    outcome = sync_round(training, {}, scores_to_log(jobs))
    for name, problem in outcome.failures.items():
        print(f"ttlaunch sync: error: {name}: {problem}", file=sys.stderr)
    for name in offline_dirs(training):
        if name not in outcome.failures:
            print(f"{name}: {outcome.urls.get(name) or jobs[name].tracker_url or 'synced'}")
    print(f"{len(outcome.synced)} of {outcome.offline} offline W&B run dirs synced")
    return ExitCode.RUNS_FAILED if outcome.failures else ExitCode.OK


if __name__ == "__main__":
    raise SystemExit(main())
