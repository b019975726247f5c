"""The module map (docs/development.md) is the authority on the code's layout: it names every
module of the package and the plugin, and nothing that is not there. The layers it states
hold: import-linter checks pyproject.toml's contracts on the real import graph. The docs
describe every setting there is, and the README stays a newcomer's page."""

import dataclasses
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO

DOCS = REPO / "docs"


def mapped_modules() -> set[str]:
    development = (DOCS / "development.md").read_text(encoding="utf-8")
    block = development.split("The module map", 1)[1].split("```", 2)[1]
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


def test_the_module_map_names_every_module_and_only_those():
    on_disk = {
        str(path.relative_to(REPO))
        for root in (REPO / "src" / "ttlaunch", REPO / "hydra_plugins")
        for path in root.rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    }
    assert mapped_modules() == on_disk


@pytest.mark.cli
def test_no_module_imports_from_a_layer_above_it_and_no_package_has_an_import_cycle():
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports is not None, "import-linter is in the test extra"
    checked = subprocess.run([lint_imports, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in checked.stdout


@pytest.mark.cli
def test_the_type_checker_passes():
    checked = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert checked.returncode == 0, checked.stdout[-4000:] + checked.stderr[-2000:]


def test_the_docs_state_the_jobs_file_version_there_is():
    from ttlaunch.records.jobs_file import STATE_VERSION

    sweep_files = (DOCS / "sweep-files.md").read_text(encoding="utf-8")
    stated = re.search(r"jobs\.json +state \(version (\d+); 1 to (\d+) are read\)", sweep_files)
    assert stated is not None and (int(stated.group(1)), int(stated.group(2))) == (STATE_VERSION, STATE_VERSION - 1)


def test_every_import_inside_a_function_says_why():
    import ast

    unexplained = []
    for root in (REPO / "src" / "ttlaunch", REPO / "hydra_plugins"):
        for path in root.rglob("*.py"):
            lines = path.read_text(encoding="utf-8").splitlines()
            for function in ast.walk(ast.parse("\n".join(lines))):
                if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                for node in ast.walk(function):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        above = node.lineno - 2  # the line above its block of imports
                        while lines[above].strip().startswith(("from ", "import ")):
                            above -= 1
                        if "#" not in lines[node.lineno - 1] and not lines[above].strip().startswith("#"):
                            unexplained.append(f"{path.relative_to(REPO)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert unexplained == [], "import at the top, or say why not in a comment on it or above it"


def test_every_setting_of_the_typed_configs_is_documented_in_docs():
    """Each field of the configs Hydra types (ttlaunch's groups, the launcher's and the
    monitor's settings, the stagger hooks') is named in a code span of some page of docs/."""
    from hydra_plugins.ttlaunch_launcher import config as plugin
    from ttlaunch.inputs import schema
    from ttlaunch.job import stagger
    from ttlaunch.monitor.settings import MonitorSettings

    spans = re.findall(r"`[^`\n]+`", "\n".join(page.read_text(encoding="utf-8") for page in DOCS.glob("*.md")))
    configs = [value for value in vars(schema).values() if isinstance(value, type) and dataclasses.is_dataclass(value)]
    configs += [plugin.LauncherConf, plugin.SweeperConf, MonitorSettings, stagger.StartTogether, stagger.FixedDelay, stagger.StartupLock]
    # Not settings: Hydra's defaults list of the launcher's node; the hooks' clock, for tests.
    not_settings = {("LauncherConf", "defaults"), ("FixedDelay", "sleep"), ("StartupLock", "sleep")}
    undocumented = [
        f"{config.__name__}.{field.name}"
        for config in configs
        for field in dataclasses.fields(config)
        if (config.__name__, field.name) not in not_settings
        and not any(re.search(rf"(?<![\w]){re.escape(field.name)}(?![\w])", span) for span in spans)
    ]
    assert len(configs) >= 12 and undocumented == []


def test_the_readme_is_a_newcomers_page_that_maps_the_reference():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)", readme))
    assert linked == {page.name for page in DOCS.glob("*.md")}, "every page of docs/ is on the README's map"
    for page in DOCS.glob("*.md"):
        for target in re.findall(r"\]\(([\w-]+\.md)", page.read_text(encoding="utf-8")):
            assert (DOCS / target).is_file(), f"{page.name} links to {target}"


def test_at_most_forty_uses_of_any_and_each_says_why():
    """`Any` only where a value's type is truly open (JSON, YAML, an untyped library's object,
    OmegaConf's field types), with the reason beside it or on the line above."""
    uses, unexplained = 0, []
    for root in (REPO / "src" / "ttlaunch", REPO / "hydra_plugins"):
        for path in root.rglob("*.py"):
            lines = path.read_text(encoding="utf-8").splitlines()
            for number, line in enumerate(lines):
                code = line.split("#", 1)[0]
                if not re.search(r"\bAny\b", code) or re.match(r"\s*(from|import) ", code) or '"""' in code:
                    continue
                uses += 1
                if "#" not in line and not lines[number - 1].strip().startswith("# Any:"):
                    unexplained.append(f"{path.relative_to(REPO)}:{number + 1}: {line.strip()}")
    assert uses <= 40 and unexplained == [], unexplained
