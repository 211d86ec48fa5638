"""The tool's own version, in one place below every stage (the package root re-exports it)."""

from __future__ import annotations

__version__ = "0.1.0"

#: how the tool names itself in the version log, the card and the mirror manifest
TOOL = f"vmeval-hf {__version__}"
