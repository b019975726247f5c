"""`python -m ttlaunch.launch experiment=<name> [compute=<cluster>/<preset>] [requeue=on|off] ...`

Always launches a sweep: without --multirun, Hydra would run the training in this process,
on the login node; ttlaunch adds --multirun itself and says so.

This is also the error boundary of the launching process: bad input is reported in one
line (exit 2), a sweep with failed jobs or a monitor that could not go on in one line
(exit 1); only bugs show a traceback.
"""

from __future__ import annotations

import difflib
import os
import re
import signal
import sys

import hydra
import yaml
from hydra.errors import HydraException

import ttlaunch.inputs.resolvers  # noqa: F401  (the configs use its resolvers)
from ttlaunch import version_line
from ttlaunch.base.errors import ExitCode, SweepInterrupted, TTLaunchError, exit_with
from ttlaunch.inputs.catalog import config_dirs, group_options, render_help
from ttlaunch.inputs.platform import default_preset, detect_platform
from ttlaunch.job.task import run_task

_HELP_FLAGS = {"-h", "--help"}
# Flags that inspect the app rather than run it: no sweep needed.
_INSPECTION_FLAGS = _HELP_FLAGS | {
    "--hydra-help", "--version", "-c", "--cfg", "-i", "--info",
    "-sc", "--shell-completion", "-p", "--package", "--resolve",
}
_MULTIRUN_FLAGS = {"-m", "--multirun"}

main_task = hydra.main(version_base="1.3", config_path="pkg://ttlaunch.configs", config_name="ttlaunch")(run_task)


def with_multirun(argv: list[str]) -> list[str]:
    """argv with --multirun added, unless it is there or the call only inspects the app."""
    flags = {arg.split("=", 1)[0] for arg in argv if arg.startswith("-")}
    if flags & (_MULTIRUN_FLAGS | _INSPECTION_FLAGS):
        return argv
    print("ttlaunch: launching as a sweep (--multirun is implied; nothing trains in this process)", file=sys.stderr)
    return [*argv, "--multirun"]


def with_platform_compute(argv: list[str]) -> list[str]:
    """argv with `compute=<the detected platform's preset>` when it picks no compute preset."""
    if any(arg.startswith(("compute=", "+compute=")) for arg in argv):
        return argv
    platform = detect_platform()
    preset = default_preset(platform)
    if preset is None:
        return argv
    print(f"ttlaunch: on {platform}: compute={preset} (choose another with compute=...)", file=sys.stderr)
    # Beside the other overrides: Hydra wants them in one run (flags take separate values).
    first = next((i for i, arg in enumerate(argv) if "=" in arg and not arg.startswith("-")), len(argv))
    return [*argv[:first], f"compute={preset}", *argv[first:]]


def describe_input_error(err: BaseException, argv: list[str] | None = None) -> str | None:
    """One line for an error in what the user gave us that reached us as Hydra's or YAML's
    (ttlaunch's own are TTLaunchErrors); None for anything else."""
    missing = re.search(r"Could not find '([^'/]+)/([^']+)'", str(err)) if isinstance(err, HydraException) else None
    if missing is not None:
        unknown = _unknown_option(missing.group(1), missing.group(2), argv or [])
        if unknown is not None:
            return unknown
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        return f"{mark.name}: line {mark.line + 1}, column {mark.column + 1}: malformed YAML: {err.problem}"
    if isinstance(err, HydraException):  # composition errors: unknown preset, bad override
        text = str(err).split("Config search path:")[0]  # the options list stays, the search path goes
        if err.__cause__ is not None:
            text += f" ({str(err.__cause__).splitlines()[0]})"
        return " ".join(text.split())
    return None


def _unknown_option(group: str, option: str, argv: list[str]) -> str | None:
    """`compute=killarny/h100_1x`: the options of the group (nested ones too, which Hydra's
    own message leaves out) and the closest one; None for a group we cannot list."""
    options = group_options(config_dirs(argv), group)
    if not options:
        return None
    close = difflib.get_close_matches(option, options, n=1, cutoff=0.5)
    hint = f"did you mean {group}={close[0]}? " if close else ""
    return f"command line: {group}={option}: no such option; {hint}{group} options: {', '.join(options)}"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    if "--version" in sys.argv[1:]:  # ttlaunch's version, not Hydra's
        print(version_line())
        return
    if _HELP_FLAGS & set(sys.argv[1:]):
        print(render_help(sys.argv[1:]), end="")
        return
    sys.argv = [sys.argv[0], *with_multirun(with_platform_compute(sys.argv[1:]))]
    # A closed terminal or a `kill` ends the launch as Ctrl-C does: its local jobs, in
    # sessions of their own (ttlaunch.backend.local_executor), are stopped and recorded, not orphaned.
    for ending in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(ending, _interrupt)
    user_wants_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    # Makes Hydra re-raise errors rather than print them as tracebacks, so they reach us.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        main_task()
    except (TTLaunchError, SweepInterrupted) as err:
        raise SystemExit(exit_with(err)) from None
    except KeyboardInterrupt:
        print(
            "ttlaunch: interrupted. SLURM jobs already submitted keep running (local jobs stop with this process); "
            "the same command again re-attaches to them and submits only runs never submitted.",
            file=sys.stderr,
        )
        raise SystemExit(ExitCode.INTERRUPTED) from None
    except Exception as err:
        message = describe_input_error(err, sys.argv[1:])
        if message is None or user_wants_traceback:
            raise
        print(f"ttlaunch: error: {message}", file=sys.stderr)
        raise SystemExit(ExitCode.BAD_INPUT) from None


if __name__ == "__main__":
    main()
