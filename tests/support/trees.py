"""Build small question trees on disk (real PNG files, no mocks)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image


def png_bytes(seed: int = 0, size: tuple[int, int] = (16, 12)) -> bytes:
    """A small, valid, seed-dependent RGB PNG."""
    im = Image.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, (seed * 13) % 256))
    im.putpixel((seed % size[0], 0), (255, 255, 255))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


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


@pytest.fixture
def data_tree(tmp_path: Path) -> Path:
    """A clean classic tree: chess x3, maze x2, with its manifest."""
    return make_tree(tmp_path / "data", {"chess": 3, "maze": 2})
