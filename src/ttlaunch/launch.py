"""`python -m ttlaunch.launch experiment=<name> [compute=<cluster>/<preset>] [requeue=on|off] ...`

Always launches a sweep: without --multirun, Hydra would run the training in this process,
on the login node; ttlaunch adds --multirun itself and says so.
"""

from __future__ import annotations

import sys

import hydra

import ttlaunch.resolvers  # noqa: F401  (the configs use its resolvers)
from ttlaunch.job import run_task

# Flags that inspect the app rather than run it: no sweep needed.
_INSPECTION_FLAGS = {
    "-h", "--help", "--hydra-help", "--version", "-c", "--cfg", "-i", "--info",
    "-sc", "--shell-completion", "-p", "--package", "--resolve",
}
_MULTIRUN_FLAGS = {"-m", "--multirun"}

main_task = hydra.main(version_base="1.3", config_path="pkg://ttlaunch.configs", config_name="config")(run_task)


def with_multirun(argv: list[str]) -> list[str]:
    """argv with --multirun added, unless it is there or the call only inspects the app."""
    flags = {arg.split("=", 1)[0] for arg in argv if arg.startswith("-")}
    if flags & (_MULTIRUN_FLAGS | _INSPECTION_FLAGS):
        return argv
    print("ttlaunch: launching as a sweep (--multirun is implied; nothing trains in this process)", file=sys.stderr)
    return [*argv, "--multirun"]


def main() -> None:
    sys.argv = [sys.argv[0], *with_multirun(sys.argv[1:])]
    main_task()


if __name__ == "__main__":
    main()
