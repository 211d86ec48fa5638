"""What every generator shares: the domain registry, :class:`GeneratedQuestion`, the metadata
every question carries and the ``fail()`` of each domain's answer check.

The domain modules import this module; :meth:`Domain.load` imports a domain module only when
its domain is generated (``python-chess`` and the renderers cost start-up time otherwise).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NoReturn

from PIL import Image

from ..errors import ValidationError


@dataclass(frozen=True)
class Domain:
    """A registered generator: its module and the labels written into metadata and manifest."""

    name: str
    task_category: str
    description: str
    module: str

    def load(self) -> ModuleType:
        return importlib.import_module(f".{self.module}", __package__)


DOMAINS: dict[str, Domain] = {
    d.name: d
    for d in (
        Domain("chess", "Chess", "Mate-in-one chess positions: play the checkmating move", "chess"),
        Domain("maze", "Maze", "Perfect mazes: move the green dot along the paths to the red flag", "maze"),
        Domain("sudoku", "Sudoku", "4x4 and 9x9 Sudoku puzzles with a unique solution", "sudoku"),
        Domain("rotation", "3D Mental Rotation",
               "A 3-D block sculpture seen from a second camera azimuth", "rotation"),
        Domain("raven", "AbstractReasoning",
               "3x3 progressive matrices: complete the missing cell from the row rules", "raven"),
    )
}


@dataclass
class GeneratedQuestion:
    """One generated puzzle: start and target frames, the prompt, and its metadata."""

    first_frame: Image.Image
    final_frame: Image.Image
    prompt: str
    metadata: dict[str, Any]


def question_id(domain: str, index: int) -> str:
    return f"{domain}_{index:04d}"


def check_failure(domain: str, metadata: dict[str, Any]) -> Callable[[str], NoReturn]:
    """The ``fail(msg)`` every domain's ``check()`` uses: raise ValidationError naming the question."""
    qid = metadata.get("id")

    def fail(msg: str) -> NoReturn:
        raise ValidationError(f"{qid}: {msg}", domain=domain, id=qid)

    return fail


def base_metadata(domain: str, index: int, prompt: str, difficulty: str) -> dict[str, Any]:
    """The fields every generated question carries (upstream's names; paths relative to questions/)."""
    qid = question_id(domain, index)
    return {
        "id": qid,
        "domain": domain,
        "prompt": prompt,
        "first_image_path": f"{domain}_task/{qid}/first_frame.png",
        "final_image_path": f"{domain}_task/{qid}/final_frame.png",
        "task_category": DOMAINS[domain].task_category,
        "difficulty": difficulty,
    }


