"""`ttlaunch <command> ...` (also `python -m ttlaunch`): one entry point for every command.

    ttlaunch launch experiment=NAME [GROUP=OPTION ...]   as python -m ttlaunch.launch
    ttlaunch status SWEEP_DIR [--follow | --rebuild]      as python -m ttlaunch.status
    ttlaunch report SWEEP_DIR [--sort-by KEY]             as python -m ttlaunch.report
    ttlaunch sync SWEEP_DIR                               as python -m ttlaunch.sync
    ttlaunch --version
"""

from __future__ import annotations

import sys

from ttlaunch import version_line
from ttlaunch.base.errors import ExitCode

USAGE = """\
usage: ttlaunch launch experiment=NAME [GROUP=OPTION ...] [KEY=VALUE ...]   launch (or re-attach to) a sweep
       ttlaunch status SWEEP_DIR [--follow | --rebuild]                    where a sweep stands (--rebuild: a new jobs.json)
       ttlaunch report SWEEP_DIR [--sort-by KEY]                           its results table, pictures and summary.md again
       ttlaunch sync SWEEP_DIR                                             its offline W&B runs synced now (wandb sync)
       ttlaunch --version
`ttlaunch launch --help` lists the experiments, compute presets and other choices.
"""


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="")
        return
    if args[0] == "--version":
        print(version_line())
        return
    command, rest = args[0], args[1:]
    if command == "launch":
        # Only the command asked for loads: --help and --version stay quick.
        from ttlaunch import launch

        sys.argv = ["ttlaunch launch", *rest]
        launch.main()
    elif command == "status":
        # Only the command asked for loads: --help and --version stay quick.
        from ttlaunch import status

        raise SystemExit(status.main(rest))
    elif command == "report":
        # Only the command asked for loads: --help and --version stay quick.
        from ttlaunch import report

        raise SystemExit(report.main(rest))
    elif command == "sync":
        # Only the command asked for loads: --help and --version stay quick.
        from ttlaunch import sync

        raise SystemExit(sync.main(rest))
    else:
        print(f"ttlaunch: error: unknown command {command!r}\n{USAGE}", end="", file=sys.stderr)
        raise SystemExit(ExitCode.BAD_INPUT)


if __name__ == "__main__":
    main()
