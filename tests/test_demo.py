"""The demo's proof that revisions differ as published: 1.1 must serve the edited prompts and the
changed first frame, 1.0 the ones before, as loaded back by ``datasets``; anything else stops the
demo with one error naming the revision and the question. (The whole demo runs in
``tests/test_cli_publish.py::test_demo_runs_green_from_a_clean_folder``.)"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.support.trees import make_tree
from vmeval_hf.demo import _change_questions, _check_revisions
from vmeval_hf.errors import VerifyError


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def changed(tmp_path: Path) -> tuple[Path, Any, dict[str, Any]]:
    """A tree changed as the demo changes it for 1.1, its changes, and both revisions as a
    faithful Hub serves them."""
    qdir = make_tree(tmp_path / "data", {"chess": 2, "maze": 2, "sudoku": 2}) / "questions"
    before = {p.parent.name: (p.read_text(encoding="utf-8"), _sha(p.parent / "first_frame.png"))
              for p in qdir.glob("*_task/*/prompt.txt")}
    changes = _change_questions(qdir)
    after = {p.parent.name: (p.read_text(encoding="utf-8"), _sha(p.parent / "first_frame.png"))
             for p in qdir.glob("*_task/*/prompt.txt")}
    loaded = {v: {"prompts": {q: x[0] for q, x in served.items()}, "first_frames": {q: x[1] for q, x in served.items()}}
              for v, served in (("1.0", before), ("1.1", after))}
    return qdir, changes, loaded


def test_the_demo_changes_two_prompts_and_a_frame_and_records_both_sides(changed: tuple[Path, Any, dict[str, Any]]
                                                                        ) -> None:
    qdir, changes, loaded = changed
    assert sorted(changes.prompts) == ["chess_0000", "maze_0000"]
    assert list(changes.first_frames) == ["chess_0000"]
    for qid, (old, new) in changes.prompts.items():
        assert old != new and new.startswith(old) and loaded["1.1"]["prompts"][qid] == new
    old, new = changes.first_frames["chess_0000"]
    frame = qdir / "chess_task" / "chess_0000" / "first_frame.png"
    assert old != new == _sha(frame)
    with Image.open(frame) as im:
        im.verify()  # still a valid PNG
    assert not (qdir / "sudoku_task" / "sudoku_0001").exists()  # and the last question of a domain went
    _check_revisions(loaded, changes)  # a faithful Hub passes


@pytest.mark.parametrize("version, field, qid, served, said", [
    ("1.1", "prompts", "chess_0000", "1.0", "revision 1.1 serves the prompt of chess_0000 that was published as 1.0"),
    ("1.1", "first_frames", "chess_0000", "1.0",
     "revision 1.1 serves the first frame of chess_0000 that was published as 1.0"),
    ("1.0", "prompts", "maze_0000", "1.1", "revision 1.0 serves the prompt of maze_0000 that was published as 1.1"),
    ("1.0", "first_frames", "chess_0000", None,
     "revision 1.0 serves the first frame of chess_0000 that was published in neither version"),
])
def test_a_revision_serving_other_content_stops_the_demo_naming_it(changed: tuple[Path, Any, dict[str, Any]],
                                                                   version: str, field: str, qid: str,
                                                                   served: str | None, said: str) -> None:
    _, changes, loaded = changed
    wrong = copy.deepcopy(loaded)
    wrong[version][field][qid] = loaded[served][field][qid] if served else "0" * 64
    with pytest.raises(VerifyError) as info:
        _check_revisions(wrong, changes)
    assert str(info.value).startswith(said) and info.value.version == version
    assert f"not the one published as {version}" in str(info.value)
