"""`python -m ttlaunch.launch --help`: what can be launched, read from the config tree.

Hydra's own help composes the config and walks every config group dozens of times; this
page reads the group directories directly, so asking for help stays as cheap as start-up.
Hydra's generic page remains available as --hydra-help.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import yaml

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable
else:  # where Python 3.10 has it
    from importlib.abc import Traversable

from ttlaunch.inputs.schema import ComputeConfig

# Group -> default option (as in configs/ttlaunch.yaml).
GROUPS = {
    "experiment": None, "compute": "local/cpu", "requeue": "off", "payload": "torchtune", "monitoring": "none",
    "remediation": "auto", "pruning": "off", "stagger": "start_together",
}
# Options that are building blocks, not choices.
_HIDDEN = {"compute": {"base"}}

USAGE = """\
usage: python -m ttlaunch.launch experiment=NAME [GROUP=OPTION ...] [KEY=VALUE ...]

Launches one job per fine-tuned run of the experiment (a sweep: --multirun is implied),
then monitors them; the sweep dir, its event log and jobs.json say what happened. On a
known cluster the compute default is its preset. The same command again re-attaches.
"""

EXAMPLES = """\
examples:
  python -m ttlaunch.launch experiment=demo
  python -m ttlaunch.launch experiment=cap_4L compute=killarney/h100_1x requeue=on user.slurm.account=ACCT
  python -m ttlaunch.launch --config-dir ~/my_configs experiment=my_sweep +seed=1,2
  python -m ttlaunch.launch 'hydra.searchpath=[ttlaunch-experiments:///scratch/me/experiments]' experiment=NAME

common keys: paths.work_root=DIR  compute.mem_gb=N  compute.timeout_min=N  stagger.seconds=S (fixed_delay)
  detach=true  resubmit_failed=true  resubmit_changed=true  hydra.callbacks.monitor.poll_interval_s=S
  evaluation.enabled=false
follow a sweep: python -m ttlaunch.status SWEEP_DIR [--follow]
inspect: --cfg job (the composed config), --info, --hydra-help (Hydra's own help)
"""


def _options(directory: Traversable, prefix: str = "") -> Iterable[str]:
    for entry in sorted(directory.iterdir(), key=lambda item: item.name):
        if entry.is_dir() and not entry.name.startswith(("_", ".")):
            yield from _options(entry, f"{prefix}{entry.name}/")
        elif entry.name.endswith(".yaml"):
            yield prefix + entry.name[: -len(".yaml")]


def group_options(roots: list[Traversable], group: str) -> list[str]:
    found: set[str] = set()
    for root in roots:
        directory = root / group
        if directory.is_dir():
            found.update(_options(directory))
    return sorted(found - _HIDDEN.get(group, set()))


def config_dirs(argv: list[str]) -> list[Traversable]:
    """The shipped configs, and a --config-dir given on the command line."""
    roots: list[Traversable] = [resources.files("ttlaunch.configs")]
    for index, arg in enumerate(argv):
        if arg in ("--config-dir", "-cd") and index + 1 < len(argv):
            roots.append(Path(argv[index + 1]).expanduser())
        elif arg.startswith("--config-dir="):
            roots.append(Path(arg.split("=", 1)[1]).expanduser())
    return roots


def reservation(roots: list[Traversable], preset: str) -> str:
    """What a compute preset asks for, in a few words: 4 x a40 GPU, 32 CPUs, 160 GB, 8 h."""
    fields: dict[str, Any] = {}  # YAML's values: ComputeConfig's fields say what each must be
    for root in roots:
        for name in ("base", preset):  # every preset extends compute/base
            path = root / "compute" / f"{name}.yaml"
            if path.is_file():
                fields.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    numeric = ("nodes", "gpus_per_node", "gpu_type", "gres", "cpus_per_task", "mem_gb", "timeout_min")
    compute = ComputeConfig(**{key: fields[key] for key in numeric if fields.get(key) is not None})
    gpus = f"{compute.gpus} x {compute.gpu_type} GPU" if compute.gpu_type else f"{compute.gpus} GPU"
    nodes = f"{compute.nodes} nodes, each " if compute.nodes > 1 else ""
    cpus = compute.cpus_per_task
    hours, minutes = divmod(compute.timeout_min, 60)
    parts = [
        nodes + (gpus if compute.gpus else "no GPU"),
        f"{cpus} CPU{'s' if cpus != 1 else ''}" if cpus else "",
        f"{compute.mem_gb:g} GB" if compute.mem_gb else "",
        f"{hours} h" if hours and not minutes else f"{compute.timeout_min} min",
    ]
    return ", ".join(part for part in parts if part)


def render_help(argv: list[str]) -> str:
    roots = config_dirs(argv)
    lines = [USAGE, "config groups (GROUP=OPTION):"]
    for group, default in GROUPS.items():
        suffix = f"  [default: {default}]" if default else "  [required]"
        options = group_options(roots, group)
        if group == "compute":  # what each preset reserves, one per line
            lines.append(f"  {group}:{suffix}")
            width = max(map(len, options), default=0)
            lines += [f"    {option.ljust(width)}  {reservation(roots, option)}" for option in options]
            continue
        lines.append(f"  {group}: {', '.join(options) or '(none)'}{suffix}")
    return "\n".join(lines) + "\n\n" + EXAMPLES
