"""`python -m ttlaunch`: the same as the `ttlaunch` command (ttlaunch.cli)."""

from ttlaunch.cli import main

main()
