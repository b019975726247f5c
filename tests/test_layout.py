"""The README's module map is the authority on the code's layout: it names every module of
the package and the plugin, and nothing that is not there."""

import re

from support import REPO


def mapped_modules() -> set[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("The module map:", 1)[1].split("```", 2)[1]
    modules: set[str] = set()
    dirs: list[tuple[int, str]] = []  # the enclosing directories, with their indents
    for line in block.splitlines():
        found = re.match(r"^( *)(\S+)", line)
        if not found:
            continue
        indent, name = len(found.group(1)), found.group(2)
        dirs = [(level, path) for level, path in dirs if level < indent]
        where = "".join(path for _, path in dirs)
        if name.endswith("/"):
            dirs.append((indent, name))
        elif name.endswith(".py"):
            modules.add(where + name)
    return modules


def test_the_readmes_module_map_names_every_module_and_only_those():
    on_disk = {
        str(path.relative_to(REPO))
        for root in (REPO / "src" / "ttlaunch", REPO / "src" / "hydra_plugins")
        for path in root.rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py") and "configs" not in path.relative_to(root).parts
    }
    assert mapped_modules() == on_disk
