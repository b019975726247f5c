"""Compile ttlaunch's modules to bytecode where they are imported from, as pip does for a
wheel it installs. An editable install has none, and where PYTHONDONTWRITEBYTECODE is set
(as on this project's machines) every job and command compiles them again: about 40 ms of
each job's CPU. setup.sh and the benchmarks run it.

    .venv/bin/python scripts/bytecode.py
"""

import compileall

import hydra_plugins.ttlaunch_launcher as plugin
import ttlaunch

for package in (ttlaunch, plugin):
    for directory in package.__path__:
        if not compileall.compile_dir(directory, quiet=1):
            raise SystemExit(f"bytecode.py: could not compile {directory}")
