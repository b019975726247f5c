# Marks the shipped config tree as the package `ttlaunch.configs` (see pyproject.toml).
