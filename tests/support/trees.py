"""Build small question trees on disk (real PNG files, no mocks), and change or break them."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.support.pngs import png_bytes, png_claiming


def make_question(qdir: Path, domain: str, index: int, *, classic: bool = True, final: bool = True,
                  prompt: str | None = None, difficulty: str = "easy", seed: int | None = None) -> Path:
    """Write ``<qdir>/<domain>_task/<domain>_NNNN/`` with real files; return the folder."""
    qid = f"{domain}_{index:04d}"
    folder = qdir / f"{domain}_task" / qid
    folder.mkdir(parents=True, exist_ok=True)
    s = index if seed is None else seed
    (folder / "first_frame.png").write_bytes(png_bytes(s))
    if final:
        (folder / "final_frame.png").write_bytes(png_bytes(s + 1000))
    text = prompt if prompt is not None else f"Solve {domain} puzzle number {index}."
    (folder / "prompt.txt").write_text(text, encoding="utf-8")
    if classic:
        meta = {"id": qid, "domain": domain, "prompt": text, "difficulty": difficulty,
                "task_category": domain.capitalize(),
                "first_image_path": f"{domain}_task/{qid}/first_frame.png",
                "final_image_path": f"{domain}_task/{qid}/final_frame.png",
                f"{domain}_data": {"index": index}}
        (folder / "question_metadata.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return folder


def make_tree(data_dir: Path, domains: dict[str, int], *, manifest: bool = True, **kwargs: object) -> Path:
    """A data dir with ``questions/`` holding ``domains[name]`` questions each; writes the manifest."""
    qdir = data_dir / "questions"
    qdir.mkdir(parents=True, exist_ok=True)
    for domain, n in domains.items():
        for i in range(n):
            make_question(qdir, domain, i, **kwargs)  # type: ignore[arg-type]
    if manifest:
        from vmeval_hf.tree.manifest_sync import write_manifest

        write_manifest(data_dir)
    return data_dir


def change_tree(data_dir: Path, *, qid: str = "chess_0000", prompt: str = "A changed prompt",
                add: tuple[str, int] = ("maze", 5), remove: str | None = None) -> None:
    """New content for the next version: give question ``qid`` another prompt (``prompt.txt`` and
    its metadata), add question ``add`` (domain, index), remove question ``remove`` if given, then
    rewrite the manifest."""
    from vmeval_hf.tree.manifest_sync import write_manifest

    qdir = data_dir / "questions"
    folder = qdir / f"{qid.rsplit('_', 1)[0]}_task" / qid
    (folder / "prompt.txt").write_text(prompt, encoding="utf-8")
    meta = json.loads((folder / "question_metadata.json").read_text(encoding="utf-8"))
    meta["prompt"] = prompt
    (folder / "question_metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    make_question(qdir, *add)
    if remove is not None:
        shutil.rmtree(qdir / f"{remove.rsplit('_', 1)[0]}_task" / remove)
    write_manifest(data_dir)


def plant_problems(data: Path, outside: Path) -> set[tuple[str, str]]:
    """Plant one problem of each kind in a fresh tree; return the expected ``(path, code)`` errors.

    ``outside`` is a file outside the tree (a symlink to it is a ``path_escape``)."""
    make_tree(data, {"chess": 12, "maze": 2}, manifest=False)
    qdir = data / "questions"

    def folder(i: int) -> Path:
        return qdir / "chess_task" / f"chess_{i:04d}"

    expected: set[tuple[str, str]] = set()

    def plant(path: Path, code: str) -> None:
        expected.add((str(path), code))

    (folder(0) / "first_frame.png").unlink()
    plant(folder(0) / "first_frame.png", "missing_file")
    (folder(1) / "prompt.txt").write_text("", encoding="utf-8")
    plant(folder(1) / "prompt.txt", "empty_prompt")
    (folder(2) / "prompt.txt").write_bytes(b"\xff\xfe")
    plant(folder(2) / "prompt.txt", "not_utf8")
    (folder(3) / "final_frame.png").write_bytes(b"GIF89a")
    plant(folder(3) / "final_frame.png", "not_png")
    (folder(4) / "first_frame.png").write_bytes(png_bytes()[:40])
    plant(folder(4) / "first_frame.png", "bad_image")
    (folder(5) / "final_frame.png").write_bytes(png_claiming(20000, 20000))
    plant(folder(5) / "final_frame.png", "image_too_large")
    (folder(6) / "question_metadata.json").write_text("{", encoding="utf-8")
    plant(folder(6) / "question_metadata.json", "invalid_json")
    (folder(7) / "question_metadata.json").write_text('{"domain": "maze"}', encoding="utf-8")
    plant(folder(7) / "question_metadata.json", "metadata_domain_mismatch")
    (folder(8) / "first_frame.png").unlink()
    (folder(8) / "first_frame.png").symlink_to(outside)
    plant(folder(8) / "first_frame.png", "path_escape")
    (folder(9) / "prompt.txt").unlink()
    (folder(9) / "prompt.txt").symlink_to(folder(9) / "prompt.txt")
    plant(folder(9) / "prompt.txt", "broken_symlink")
    (folder(10) / "prompt.txt").unlink()
    os.mkfifo(folder(10) / "prompt.txt")
    plant(folder(10) / "prompt.txt", "not_a_file")
    (folder(11) / "final_frame.png").unlink()
    plant(folder(11) / "final_frame.png", "missing_file")
    bad = qdir / "chess_task" / "chess_12"
    bad.mkdir()
    plant(bad, "bad_folder_name")
    (qdir / "Maze_task").mkdir()
    plant(qdir / "Maze_task", "bad_folder_name")
    return expected


@pytest.fixture
def data_tree(tmp_path: Path) -> Path:
    """A clean classic tree: chess x3, maze x2, with its manifest."""
    return make_tree(tmp_path / "data", {"chess": 3, "maze": 2})
