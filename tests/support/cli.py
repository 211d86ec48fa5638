"""Run the real ``vmeval-hf`` commands in-process with click's ``CliRunner``."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from vmeval_hf.cli import cli


def run(*args: str | Path) -> Result:
    """``vmeval-hf <args>``; the result whatever its exit code."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def ok(*args: str | Path) -> Result:
    """``vmeval-hf <args>``, which must exit 0 (else the assertion shows its output)."""
    result = run(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result
