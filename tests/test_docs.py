"""README stays in step with the CLI (the way sqlite-utils keeps its docs honest)."""

from __future__ import annotations

import re
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
