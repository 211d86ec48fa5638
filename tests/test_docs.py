"""README stays in step with the CLI (the way sqlite-utils keeps its docs honest), and every test
RELIABILITY.md or BENCHMARKS.md cites as evidence exists."""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest

from vmeval_hf.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_is_in_the_readme(name: str) -> None:
    assert re.search(rf"vmeval-hf {re.escape(name)}\b", README), f"README does not show `vmeval-hf {name}`"


def test_readme_commands_exist() -> None:
    shown = set(re.findall(r"^vmeval-hf ([a-z]+)", README, flags=re.MULTILINE))
    assert shown, "README shows no commands"
    assert shown <= set(cli.commands), f"README shows commands that do not exist: {shown - set(cli.commands)}"


@pytest.mark.parametrize("marker", ["ci:main-command", "ci:test-command"])
def test_first_run_commands_are_marked(marker: str) -> None:
    block = re.search(rf"<!-- {marker} -->\s*```bash\n(.+?)\n```\s*<!-- /{marker} -->", README, flags=re.DOTALL)
    assert block and block.group(1).count("\n") == 0, f"{marker} must be exactly one command line"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "ci:test-command" in ci


# --- the test names RELIABILITY.md and BENCHMARKS.md cite ---------------------------------------

REPO = Path(__file__).resolve().parent.parent
_HEADING_FILE = re.compile(r"^#+ .*?\(`(tests/test_\w+\.py)`")
_CITED = re.compile(r"`(?:(tests/test_\w+\.py)::|(::))?(test_\w+)(?:\[[^\]`]*\])?`")


def cited_tests(text: str) -> list[tuple[int, str | None, str]]:
    """``(line number, file, test function)`` for each test a page names, in the three forms the
    pages use: ``tests/test_x.py::test_y``; ``::test_y``, in the file named last on that line; and
    a bare ``test_y``, in the file named in the section's heading (None where there is no such file).
    A parametrised test's ``[...]`` is left off."""
    cited = []
    section_file = None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("#"):
            heading = _HEADING_FILE.match(line)
            section_file = heading.group(1) if heading else None
            continue
        line_file = None
        for match in _CITED.finditer(line):
            named, same, test = match.groups()
            if named:
                line_file = named
            cited.append((number, named or (line_file if same else section_file), test))
    return cited


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def test_cited_tests_reads_each_form_the_pages_use() -> None:
    page = textwrap.dedent("""\
        ### Crashes (`tests/test_crash.py`)
        | x | `test_a`, `tests/test_b.py::test_b[1/2]`, `::test_c`, `[param-only]`, `test_b.py` |
        ### Elsewhere
        | y | `test_d` |
    """)
    assert cited_tests(page) == [(2, "tests/test_crash.py", "test_a"), (2, "tests/test_b.py", "test_b"),
                                 (2, "tests/test_b.py", "test_c"), (4, None, "test_d")]


@pytest.mark.parametrize("page", ["RELIABILITY.md", "BENCHMARKS.md"])
def test_every_test_a_page_names_exists(page: str) -> None:
    missing = []
    for number, file, test in cited_tests((REPO / page).read_text(encoding="utf-8")):
        if file is None:
            missing.append(f"{page}:{number}: `{test}` is named outside a section about one test file")
        elif not (REPO / file).is_file() or test not in _test_functions(REPO / file):
            missing.append(f"{page}:{number}: {file}::{test} does not exist")
    assert missing == []
