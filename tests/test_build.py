"""build_release against the real ``datasets``, ``pyarrow`` and ``huggingface_hub`` card parser.

One mixed tree is built once per module and read many ways: ``load_dataset`` (every
config, streaming, Image bytes and PIL decoding), bare ``pyarrow``, the release
manifest, the card YAML. Edge cases (sharding, validation failure, interrupted
builds, rebuilds elsewhere, the CLI) build their own small trees.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from huggingface_hub import DatasetCard
from PIL import Image as PILImage

from tests.support.files import killable_env, snapshot
from tests.support.pngs import noise_png, png_bytes
from tests.support.trees import make_question, make_tree
from vmeval_hf._shared.fs import canonical_json
from vmeval_hf.cli import cli
from vmeval_hf.errors import ConfigError, ValidationError
from vmeval_hf.release import schema
from vmeval_hf.release.build import BuildResult, build_release
from vmeval_hf.release.release_manifest import (
    RELEASE_MANIFEST,
    check_release_files,
    content_sha256,
    load_release,
)
from vmeval_hf.tree.manifest_sync import write_manifest
from vmeval_hf.tree.model import KNOWN_FILES, id_sort_key

REPO = Path(__file__).resolve().parent.parent
DIFFICULTIES = ("easy", "medium", "hard")
CHESS_IDS = [*range(105), 9999, 10000]  # 105 + 2 rows: three row groups; 9999 < 10000 only in natural order
VIDEO = bytes(range(256)) * 8
UNICODE_PROMPT = "Trouvez la sortie du labyrinthe — 迷路 ✓\nDeuxième ligne.\n"


# --- trees and helpers ---------------------------------------------------------------


def _mixed_tree(data_dir: Path) -> Path:
    """chess: 107 questions (varied frame sizes, one minimal without final frame, one with goal and
    video); maze: 2 (one unicode prompt); sudoku: a single question."""
    qdir = data_dir / "questions"
    for i in CHESS_IDS:
        if i == 3:
            folder = make_question(qdir, "chess", i, classic=False, final=False)
        else:
            folder = make_question(qdir, "chess", i, difficulty=DIFFICULTIES[i % 3])
        (folder / "first_frame.png").write_bytes(png_bytes(i, size=(16 + i % 7, 12 + i % 5)))
        if i == 5:
            (folder / "goal.txt").write_text("Checkmate in one.", encoding="utf-8")
            (folder / "ground_truth.mp4").write_bytes(VIDEO)
    make_question(qdir, "maze", 0, difficulty="hard")
    make_question(qdir, "maze", 1, prompt=UNICODE_PROMPT, difficulty="medium")
    make_question(qdir, "sudoku", 0, difficulty="easy")
    write_manifest(data_dir)
    return data_dir


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def _text(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _expected(data_dir: Path) -> dict[str, dict[str, Any]]:
    """What every row should hold, read straight from the source files (not via the library)."""
    out: dict[str, dict[str, Any]] = {}
    for folder in sorted((data_dir / "questions").glob("*_task/*")):
        meta_text = _text(folder / "question_metadata.json")
        meta = json.loads(meta_text) if meta_text else {}
        out[folder.name] = {
            "id": folder.name,
            "domain": folder.parent.name.removesuffix("_task"),
            "task_category": meta.get("task_category"),
            "difficulty": meta.get("difficulty"),
            "prompt": _text(folder / "prompt.txt"),
            "first_frame": _read(folder / "first_frame.png"),
            "final_frame": _read(folder / "final_frame.png"),
            "goal": _text(folder / "goal.txt"),
            "ground_truth_video": _read(folder / "ground_truth.mp4"),
            "metadata": meta_text,
            "source_path": f"{folder.parent.name}/{folder.name}",
        }
    return out


def _natural(ids: list[str]) -> list[str]:
    return sorted(ids, key=id_sort_key)


def _ordered_ids(expected: dict[str, dict[str, Any]], domain: str | None = None) -> list[str]:
    """Rows in release order: domains alphabetically, natural id order within each."""
    domains = sorted({e["domain"] for e in expected.values()}) if domain is None else [domain]
    return [i for d in domains for i in _natural([k for k, e in expected.items() if e["domain"] == d])]


def _raw_rows(ds: Any) -> list[dict[str, Any]]:
    """Rows with images as ``{"bytes", "path"}`` dicts, as stored."""
    for col in schema.IMAGE_COLUMNS:
        ds = ds.cast_column(col, datasets.Image(decode=False))
    return list(ds)


def _flatten(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v["bytes"] if isinstance(v, dict) else v) for k, v in row.items()}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _card_data(out: Path) -> dict[str, Any]:
    return DatasetCard.load(out / "README.md").data.to_dict()


def _infos(out: Path) -> dict[str, dict[str, Any]]:
    return {i["config_name"]: i for i in _card_data(out)["dataset_info"]}


@pytest.fixture(autouse=True)
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private datasets cache per test, so no test reads another's prepared Arrow files."""
    cache = tmp_path / "hf_cache"
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    return cache


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, BuildResult]:
    """(data_dir, release dir, result) for the mixed tree; read-only for the tests."""
    root = tmp_path_factory.mktemp("mixed")
    data_dir = _mixed_tree(root / "data")
    result = build_release(data_dir, root / "release", version="1.0", repo_id="org/vmevalkit-questions")
    return data_dir, root / "release", result


# --- load_dataset round trip --------------------------------------------------------------


def test_load_default_config_returns_every_question_byte_for_byte(mixed: tuple[Path, Path, BuildResult]) -> None:
    data_dir, out, _ = mixed
    expected = _expected(data_dir)
    dd = datasets.load_dataset(str(out))
    assert list(dd) == ["test"]
    rows = _raw_rows(dd["test"])
    assert [r["id"] for r in rows] == _ordered_ids(expected)
    for row in rows:
        assert _flatten(row) == expected[row["id"]], row["id"]
        assert row["first_frame"]["path"] == "first_frame.png"  # a basename only, never a local path
    by_id = {r["id"]: r for r in rows}
    minimal = by_id["chess_0003"]
    assert minimal["final_frame"] is None and minimal["metadata"] is None
    assert minimal["difficulty"] is None and minimal["task_category"] is None
    assert by_id["chess_0005"]["ground_truth_video"] == VIDEO and by_id["chess_0005"]["goal"] == "Checkmate in one."
    assert by_id["maze_0001"]["prompt"] == UNICODE_PROMPT


@pytest.mark.parametrize("domain", ["chess", "maze", "sudoku"])
def test_load_domain_config(mixed: tuple[Path, Path, BuildResult], domain: str) -> None:
    data_dir, out, _ = mixed
    expected = _expected(data_dir)
    dd = datasets.load_dataset(str(out), domain)
    assert list(dd) == ["test"]
    rows = _raw_rows(dd["test"])
    assert [r["id"] for r in rows] == _ordered_ids(expected, domain)
    assert all(_flatten(r) == expected[r["id"]] for r in rows)


def test_images_decode_to_pil_with_source_size(mixed: tuple[Path, Path, BuildResult]) -> None:
    data_dir, out, _ = mixed
    ds = datasets.load_dataset(str(out), split="test")
    assert isinstance(ds.features["first_frame"], datasets.Image)
    assert isinstance(ds.features["final_frame"], datasets.Image)
    for row in ds:
        folder = data_dir / "questions" / row["source_path"]
        for col in schema.IMAGE_COLUMNS:
            src = folder / f"{col}.png"
            if not src.is_file():
                assert row[col] is None
                continue
            assert isinstance(row[col], PILImage.Image)
            with PILImage.open(src) as im:
                assert row[col].size == im.size
                assert row[col].mode == im.mode
    sizes = {row["first_frame"].size for row in ds}
    assert len(sizes) > 1  # the frames really differ in size, so the check above means something


@pytest.mark.parametrize("config", ["default", "chess"])
def test_streaming(mixed: tuple[Path, Path, BuildResult], config: str) -> None:
    data_dir, out, _ = mixed
    expected = _expected(data_dir)
    stream = datasets.load_dataset(str(out), config, split="test", streaming=True)
    assert isinstance(stream, datasets.IterableDataset)
    rows = list(stream)
    assert [r["id"] for r in rows] == _ordered_ids(expected, None if config == "default" else "chess")
    for row in rows:
        e = expected[row["id"]]
        assert isinstance(row["first_frame"], PILImage.Image)
        assert row["first_frame"].size == PILImage.open(io.BytesIO(e["first_frame"])).size
        assert (row["final_frame"] is None) == (e["final_frame"] is None)
        assert (row["prompt"], row["metadata"], row["goal"]) == (e["prompt"], e["metadata"], e["goal"])
    raw = _raw_rows(stream)
    assert all(_flatten(r) == expected[r["id"]] for r in raw)


def test_shards_alone_carry_the_image_features(mixed: tuple[Path, Path, BuildResult]) -> None:
    """No card: datasets infers features from the shards' ``huggingface`` schema metadata."""
    data_dir, out, result = mixed
    files = [str(out / s["path"]) for s in result.shards]
    ds = datasets.load_dataset("parquet", data_files={"test": files}, split="test")
    assert ds.features == datasets.Features.from_dict(schema.features_dict())
    assert isinstance(ds.features["first_frame"], datasets.Image)
    assert isinstance(ds.features["final_frame"], datasets.Image)
    assert isinstance(ds[0]["first_frame"], PILImage.Image)
    for shard in result.shards:
        meta = pq.read_schema(out / shard["path"]).metadata
        assert json.loads(meta[b"huggingface"]) == {"info": {"features": schema.features_dict()}}


# --- the Parquet files ------------------------------------------------------------------------


def test_rows_in_natural_id_order_and_small_row_groups(mixed: tuple[Path, Path, BuildResult]) -> None:
    data_dir, out, result = mixed
    expected = _expected(data_dir)
    for domain in result.domains:
        ids: list[str] = []
        for shard in (s for s in result.shards if s["path"].startswith(f"data/{domain}/")):
            pf = pq.ParquetFile(out / shard["path"])
            groups = [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)]
            assert all(0 < n <= 100 for n in groups), groups
            ids += pf.read(columns=["id"]).column("id").to_pylist()
        assert ids == _ordered_ids(expected, domain)
    chess = _ordered_ids(expected, "chess")
    assert chess.index("chess_0002") < chess.index("chess_0010") < chess.index("chess_9999") < chess.index("chess_10000")
    pf = pq.ParquetFile(out / "data/chess/test-00000-of-00001.parquet")
    assert [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)] == [100, 7]


def test_parquet_image_bytes_stored_uncompressed(mixed: tuple[Path, Path, BuildResult]) -> None:
    """PNG bytes go in as they are: no second compression pass over already-compressed data."""
    _, out, _ = mixed
    md = pq.ParquetFile(out / "data/chess/test-00000-of-00001.parquet").metadata
    rg = md.row_group(0)
    codecs = {rg.column(i).path_in_schema: rg.column(i).compression for i in range(rg.num_columns)}
    assert codecs["first_frame.bytes"] == codecs["final_frame.bytes"] == "UNCOMPRESSED"
    assert codecs["ground_truth_video"] == "UNCOMPRESSED"


# --- the release manifest ------------------------------------------------------------------


def test_release_manifest_lists_sources_shards_and_files(mixed: tuple[Path, Path, BuildResult]) -> None:
    data_dir, out, result = mixed
    text = (out / RELEASE_MANIFEST).read_text(encoding="utf-8")
    manifest = json.loads(text)
    assert text == canonical_json(manifest)  # the project's one JSON form
    qdir = data_dir / "questions"

    want_sources = [
        {"path": p.relative_to(qdir).as_posix(), "size": p.stat().st_size, "sha256": _sha(p.read_bytes())}
        for p in sorted(qdir.glob("*_task/*/*")) if p.name in KNOWN_FILES
    ]
    assert manifest["sources"] == sorted(want_sources, key=lambda s: s["path"])
    assert any(s["path"] == "chess_task/chess_0005/ground_truth.mp4" for s in manifest["sources"])
    assert not any(s["path"].startswith("chess_task/chess_0003/final") for s in manifest["sources"])

    on_disk = snapshot(out)
    shard_paths = sorted(p for p in on_disk if p.startswith("data/"))
    assert [s["path"] for s in manifest["shards"]] == shard_paths
    for s in manifest["shards"]:
        assert s["size"] == len(on_disk[s["path"]]) and s["sha256"] == _sha(on_disk[s["path"]])
        assert s["rows"] == pq.ParquetFile(out / s["path"]).metadata.num_rows

    assert [f["path"] for f in manifest["files"]] == sorted(p for p in on_disk if p != RELEASE_MANIFEST)
    assert {"README.md", "assets/chess_preview.png"} <= {f["path"] for f in manifest["files"]}
    for f in manifest["files"]:
        assert f["size"] == len(on_disk[f["path"]]) and f["sha256"] == _sha(on_disk[f["path"]])

    assert manifest["schema"] == 1 and manifest["version"] == "1.0"
    assert manifest["questions"] == 110 and manifest["domains"] == {"chess": 107, "maze": 2, "sudoku": 1}
    assert manifest["content_sha256"] == content_sha256(manifest["sources"]) == result.content_sha256
    assert load_release(out) == manifest
    assert check_release_files(out, manifest) == []
    assert result.size_bytes == sum(len(b) for b in on_disk.values())


def test_content_sha256_ignores_the_version_label(mixed: tuple[Path, Path, BuildResult], tmp_path: Path) -> None:
    data_dir, out, result = mixed
    other = build_release(data_dir, tmp_path / "v2", version="2.5")
    assert other.content_sha256 == result.content_sha256
    a = json.loads((out / RELEASE_MANIFEST).read_text(encoding="utf-8"))
    b = json.loads((tmp_path / "v2" / RELEASE_MANIFEST).read_text(encoding="utf-8"))
    assert b["version"] == "2.5"
    assert a["sources"] == b["sources"] and a["shards"] == b["shards"]  # shards do not mention the version
    assert _card_data(tmp_path / "v2")["vmeval"]["version"] == "2.5"


# --- the card --------------------------------------------------------------------------------


def test_card_yaml_parses_and_counts(mixed: tuple[Path, Path, BuildResult]) -> None:
    _, out, result = mixed
    data = _card_data(out)
    configs = {c["config_name"]: c for c in data["configs"]}
    assert list(configs) == ["default", "chess", "maze", "sudoku"]
    assert configs["default"]["default"] is True
    assert configs["default"]["data_files"] == [{"split": "test", "path": "data/*/test-*.parquet"}]
    assert configs["sudoku"]["data_files"] == [{"split": "test", "path": "data/sudoku/test-*.parquet"}]
    for name, config in configs.items():
        matched = sorted(p.relative_to(out).as_posix() for p in out.glob(config["data_files"][0]["path"]))
        assert matched == [s["path"] for s in result.shards if name == "default" or s["path"].startswith(f"data/{name}/")]
    infos = _infos(out)
    counts = {**result.domains, "default": result.questions}
    assert {n: i["splits"] for n, i in infos.items()} == {
        n: [{"name": "test", "num_bytes": infos[n]["dataset_size"], "num_examples": counts[n]}] for n in counts
    }
    assert infos["default"]["dataset_size"] == sum(infos[d]["dataset_size"] for d in result.domains)
    assert data["vmeval"] == {"version": "1.0", "repo": "org/vmevalkit-questions"}
    body = (out / "README.md").read_text(encoding="utf-8")
    assert 'load_dataset("org/vmevalkit-questions", revision="1.0", split="test")' in body
    assert result.content_sha256 in body
    assert "(assets/chess_preview.png)" in body


def test_schema_features_equal_the_card_features(mixed: tuple[Path, Path, BuildResult]) -> None:
    _, out, _ = mixed
    want = datasets.Features.from_dict(schema.features_dict())
    for name, info in _infos(out).items():
        assert datasets.Features._from_yaml_list(info["features"]) == want, name
        assert datasets.load_dataset_builder(str(out), name).info.features == want, name
    assert want.arrow_schema.remove_metadata() == schema.arrow_schema().remove_metadata()


@pytest.mark.parametrize("config", ["default", "chess", "sudoku"])
def test_card_sizes_equal_what_datasets_computes(mixed: tuple[Path, Path, BuildResult], config: str) -> None:
    """datasets checks num_examples but not num_bytes; compare both with what it records after preparing."""
    _, out, _ = mixed
    card = _infos(out)[config]
    builder = datasets.load_dataset_builder(str(out), config)
    builder.download_and_prepare(verification_mode="all_checks")
    split = builder.info.splits["test"]
    assert (split.num_examples, split.num_bytes) == (card["splits"][0]["num_examples"], card["splits"][0]["num_bytes"])
    assert builder.info.dataset_size == card["dataset_size"]
    assert builder.info.download_size == card["download_size"]


# --- determinism -----------------------------------------------------------------------------


def test_rebuild_is_byte_identical_here_elsewhere_and_later(mixed: tuple[Path, Path, BuildResult],
                                                           tmp_path: Path) -> None:
    data_dir, out, _ = mixed
    first = snapshot(out)
    assert build_release(data_dir, tmp_path / "again", version="1.0").content_sha256
    assert snapshot(tmp_path / "again") == first

    # another folder, other mtimes, another process with another hash seed and time zone
    moved = tmp_path / "elsewhere" / "data"
    shutil.copytree(data_dir, moved)
    for p in moved.rglob("*"):
        os.utime(p, (1_000_000_000, 1_000_000_000))
    env = {**os.environ, "PYTHONHASHSEED": "12345", "TZ": "Pacific/Auckland", "SOURCE_DATE_EPOCH": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "vmeval_hf.cli", "build", "--data-dir", str(moved), "--out", str(tmp_path / "later"),
         "--version", "1.0", "--repo", "org/vmevalkit-questions"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert snapshot(tmp_path / "later") == first


_FORKED_BUILD = """
import os, sys
import vmeval_hf.release.build as b
import vmeval_hf._shared.forked as forked; forked.PARALLEL_MIN_QUESTIONS = 0
inner = b._compile_domain
def spy(*args):
    with open(sys.argv[3], "a") as fh:
        fh.write(f"{os.getpid()} {args[3]} {'hashes' if args[6] is True else '-'}\\n")
    return inner(*args)
b._compile_domain = spy
renderer = b.load_renderer
b.load_renderer = lambda: open(sys.argv[3], "a").write(f"{os.getpid()} renderer -\\n") and renderer()
b.build_release(sys.argv[1], sys.argv[2], version="1.0", workers=2)
print(os.getpid())
"""


def test_worker_processes_write_the_same_bytes(tmp_path: Path) -> None:
    # In a fresh process: this one runs server threads, so build_release would not fork here.
    data_dir = make_tree(tmp_path / "data", {"chess": 3, "maze": 2, "sudoku": 1})
    build_release(data_dir, tmp_path / "one", version="1.0")
    pids = tmp_path / "pids.txt"
    proc = subprocess.run([sys.executable, "-c", _FORKED_BUILD, str(data_dir), str(tmp_path / "two"), str(pids)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [line.split() for line in pids.read_text().splitlines()]
    calls = [line for line in lines if line[1] != "renderer"]
    assert sorted(domain for _, domain, _ in calls) == ["chess", "maze", "sudoku"]
    assert proc.stdout.strip() not in {pid for pid, _, _ in calls}  # every domain was written in a worker process
    # Biggest domain first: the smallest (sudoku) is started last, so it is the worker that hashes
    # its own shards; the parent hashed the others. The first two start together, so the order of
    # their lines in the file is a race and is not checked.
    assert sorted((domain, hashes) for _, domain, hashes in calls) == [
        ("chess", "-"), ("maze", "-"), ("sudoku", "hashes")]
    # the card's imports load here, once, while the first workers run (before the last one starts)
    renderer = [proc.stdout.strip(), "renderer", "-"]
    assert [line for line in lines if line[1] == "renderer"] == [renderer]
    assert lines.index(renderer) < next(i for i, line in enumerate(lines) if line[1] == "sudoku")
    assert snapshot(tmp_path / "two") == snapshot(tmp_path / "one")


def test_previews_show_the_first_questions_frames_side_by_side(tmp_path: Path) -> None:
    data_dir = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    folder = data_dir / "questions" / "chess_task" / "chess_0000"
    for name, size, color in (("first_frame.png", (400, 300), (200, 0, 0)), ("final_frame.png", (600, 300), (0, 0, 200))):
        buf = io.BytesIO()
        PILImage.new("RGB", size, color).save(buf, format="PNG")
        (folder / name).write_bytes(buf.getvalue())
    build_release(data_dir, tmp_path / "out", version="1.0")
    with PILImage.open(tmp_path / "out" / "assets" / "chess_preview.png") as im:
        assert im.size == (267 + 8 + 400, 200)  # each frame shrunk to 200 px high, 8 px apart
        assert im.getpixel((130, 100)) == (200, 0, 0) and im.getpixel((267 + 8 + 200, 100)) == (0, 0, 200)
        assert im.getpixel((267 + 4, 100)) == (255, 255, 255)
    with PILImage.open(tmp_path / "out" / "assets" / "maze_preview.png") as im:
        assert im.size == (267 + 8 + 267, 200)  # 16x12 frames grown to 200 px high


# --- edge cases ------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["4KB", 1])
def test_small_max_shard_size_keeps_every_row_once(tmp_path: Path, limit: str | int) -> None:
    data_dir = make_tree(tmp_path / "data", {"chess": 23, "maze": 4})
    expected = _expected(data_dir)
    result = build_release(data_dir, tmp_path / "out", version="1.0", max_shard_size=limit)
    out = tmp_path / "out"
    by_domain: dict[str, list[str]] = {}
    for s in result.shards:
        by_domain.setdefault(s["path"].split("/")[1], []).append(s["path"])
    for domain, paths in by_domain.items():
        n = len(paths)
        assert paths == [f"data/{domain}/test-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
        assert sorted(p.relative_to(out).as_posix() for p in (out / "data" / domain).iterdir()) == paths
    assert len(by_domain["chess"]) > 3
    if limit == 1:  # every question is over the limit: one shard each
        assert all(s["rows"] == 1 for s in result.shards)
    else:
        for s in result.shards:
            table = pq.read_table(out / s["path"])
            size = sum(len(expected[i]["first_frame"]) + len(expected[i]["final_frame"] or b"")
                       + len(expected[i]["prompt"]) + len(expected[i]["metadata"] or "")
                       for i in table.column("id").to_pylist())
            assert s["rows"] == 1 or size <= 4000
    ids = [r["id"] for r in _raw_rows(datasets.load_dataset(str(out), split="test"))]
    assert ids == _ordered_ids(expected)  # each exactly once, in order
    for domain in ("chess", "maze"):
        rows = _raw_rows(datasets.load_dataset(str(out), domain, split="test"))
        assert [r["id"] for r in rows] == _ordered_ids(expected, domain)
        assert all(_flatten(r) == expected[r["id"]] for r in rows)
    builder = datasets.load_dataset_builder(str(out))
    builder.download_and_prepare(verification_mode="all_checks")  # checks num_examples
    ours, theirs = _infos(out)["default"]["splits"][0]["num_bytes"], builder.info.splits["test"].num_bytes
    if limit == 1:
        # datasets concatenates runs of single-row batches before counting (ArrowWriter.write_row),
        # which shares offsets and bitmaps between rows: a few bytes less than one table per row.
        assert theirs < ours < theirs * 1.01
    else:
        assert theirs == ours


def test_single_question_without_final_frame(tmp_path: Path) -> None:
    """The smallest release: one domain, one minimal-layout question, an all-null final_frame column."""
    data_dir = tmp_path / "data"
    make_question(data_dir / "questions", "tower", 7, classic=False, final=False)
    write_manifest(data_dir)
    result = build_release(data_dir, tmp_path / "out", version="0.1")
    assert result.domains == {"tower": 1} and len(result.shards) == 1
    for config in ("default", "tower"):
        ds = datasets.load_dataset(str(tmp_path / "out"), config, split="test")
        assert isinstance(ds.features["final_frame"], datasets.Image)
        assert ds.num_rows == 1
        row = ds[0]
        assert row["id"] == "tower_0007" and row["final_frame"] is None and row["metadata"] is None
        assert isinstance(row["first_frame"], PILImage.Image)
        assert _raw_rows(ds)[0]["first_frame"]["bytes"] == (data_dir / "questions/tower_task/tower_0007/first_frame.png").read_bytes()
    assert _infos(tmp_path / "out")["tower"]["splits"][0]["num_examples"] == 1
    assert [p["path"] for p in json.loads((tmp_path / "out" / RELEASE_MANIFEST).read_text())["files"]] == [
        "README.md", "assets/tower_preview.png", "data/tower/test-00000-of-00001.parquet"]


# --- large videos ---------------------------------------------------------------------------------

BIG_VIDEO = 200_000_000  # bytes

_BUILD = "import sys; from vmeval_hf.release.build import build_release; build_release(sys.argv[1], sys.argv[2], version='1.0')"

# pyarrow alone writing one row group that holds the video: read into memory (as any writer needs
# it) and handed over without a copy, written with the release's writer settings
_WRITE_ONE_ROW_GROUP = """
import sys
import pyarrow as pa
from vmeval_hf.release.shards import parquet_writer
video = open(sys.argv[1], "rb").read() if sys.argv[1] else b""
offsets = pa.py_buffer((0).to_bytes(4, "little") + len(video).to_bytes(4, "little"))
column = pa.Array.from_buffers(pa.binary(), 1, [None, offsets, pa.py_buffer(video)])
schema = pa.schema([pa.field("ground_truth_video", pa.binary())])
writer = parquet_writer(sys.argv[2], schema, dictionary=[], statistics=[])
writer.write_table(pa.Table.from_arrays([column], schema=schema))
writer.close()
"""


def _peak_mb(code: str, *args: str | Path) -> float:
    """The peak RSS of a child process running ``code``, in MB (the build's tree is one process
    here: fewer than 400 questions are compiled without forked workers). Read by the child itself
    from its ``VmHWM`` as it ends: ``ru_maxrss`` from ``wait4`` would count this (big) process's own
    peak, which the child inherits for the moment between its fork and its exec."""
    report = "\nprint(next(line for line in open('/proc/self/status') if line.startswith('VmHWM:')).split()[1])"
    proc = subprocess.run([sys.executable, "-c", code + report, *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.split()[-1]) / 1024


def _write_video(path: Path, size: int, seed: int) -> str:
    """``size`` bytes of noise at ``path``, written 1 MiB at a time; returns their sha256."""
    h = hashlib.sha256()
    block = hashlib.sha256(str(seed).encode()).digest() * (2**20 // 32)
    with open(path, "wb") as fh:
        for start in range(0, size, len(block)):
            chunk = os.urandom(16) + block[16:min(len(block), size - start)]
            h.update(chunk)
            fh.write(chunk)
    return h.hexdigest()


@pytest.mark.slow
def test_big_videos_keep_the_build_memory_flat_and_round_trip(tmp_path: Path) -> None:
    """Two 200 MB videos in neighbouring questions: the build's peak stays within 20% of a build
    without them plus one row group (what pyarrow alone needs to write a row group holding one of
    them: its writer copies a page's values twice, see shards.DomainWriter), and each video's
    bytes come back exactly from the Parquet file. Before: each video was read whole into a
    ``bytes``, both sat in one row group and were joined into one more copy: 1.5 GB over the
    build without them, against 0.6 GB now."""
    plain = make_tree(tmp_path / "plain", {"chess": 30, "maze": 30})
    with_videos = make_tree(tmp_path / "videos", {"chess": 30, "maze": 30})
    qdir = with_videos / "questions" / "chess_task"
    shas = {qid: _write_video(qdir / qid / "ground_truth.mp4", BIG_VIDEO, i)
            for i, qid in enumerate(("chess_0005", "chess_0006"))}

    without = _peak_mb(_BUILD, plain, tmp_path / "out-plain")
    one_row_group = (_peak_mb(_WRITE_ONE_ROW_GROUP, qdir / "chess_0005" / "ground_truth.mp4", tmp_path / "one.parquet")
                     - _peak_mb(_WRITE_ONE_ROW_GROUP, "", tmp_path / "empty.parquet"))
    shutil.rmtree(tmp_path / "plain")
    (tmp_path / "one.parquet").unlink()
    peak = _peak_mb(_BUILD, with_videos, tmp_path / "out")
    figures = f"build {peak:.0f} MB, without the videos {without:.0f} MB, one row group {one_row_group:.0f} MB"
    assert peak <= 1.2 * (without + one_row_group), figures

    found = {}
    for shard in (tmp_path / "out" / "data" / "chess").glob("*.parquet"):
        for batch in pq.ParquetFile(shard).iter_batches(batch_size=1, columns=["id", "ground_truth_video"]):
            video = batch.column(1)[0].as_buffer()
            if video is not None:
                found[batch.column(0)[0].as_py()] = (len(video), hashlib.sha256(video).hexdigest())
    assert found == {qid: (BIG_VIDEO, sha) for qid, sha in shas.items()}


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_validation_failure_writes_nothing(tmp_path: Path) -> None:
    data_dir = make_tree(tmp_path / "data", {"chess": 3})
    releases = tmp_path / "releases"
    build_release(data_dir, releases / "current", version="1.0")
    before = snapshot(releases)
    data_before = snapshot(data_dir)
    bad = data_dir / "questions/chess_task/chess_0001/first_frame.png"
    bad.write_bytes(b"not a png")
    data_before[bad.relative_to(data_dir).as_posix()] = b"not a png"

    with pytest.raises(ValidationError) as info:
        build_release(data_dir, releases / "current", version="1.1")
    assert str(bad) in str(info.value)
    with pytest.raises(ValidationError):
        build_release(data_dir, releases / "fresh", version="1.1")
    with pytest.raises(ValidationError):
        build_release(data_dir, version="1.1")  # default --out: data/releases/1.1
    assert snapshot(releases) == before
    assert _entries(releases) == ["current"]
    assert snapshot(data_dir) == data_before and not (data_dir / "releases").exists()


@pytest.mark.parametrize("exc", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_interrupted_build_keeps_previous_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  exc: BaseException) -> None:
    data_dir = make_tree(tmp_path / "data", {"chess": 3, "maze": 2})
    releases = tmp_path / "releases"
    build_release(data_dir, releases / "current", version="1.0")
    before = snapshot(releases)

    def boom(**kwargs: Any) -> str:
        raise exc

    monkeypatch.setattr("vmeval_hf.release.card.render_card", boom)
    with pytest.raises(type(exc)):
        build_release(data_dir, releases / "current", version="1.1")
    with pytest.raises(type(exc)):
        build_release(data_dir, releases / "new", version="1.1")
    assert _entries(releases) == ["current"]  # no .building-/.old- folders, no half release
    assert snapshot(releases) == before


def test_rebuild_over_existing_release_replaces_it(tmp_path: Path) -> None:
    data_dir = make_tree(tmp_path / "data", {"chess": 3, "maze": 2})
    releases = tmp_path / "releases"
    build_release(data_dir, releases / "current", version="1.0")
    shutil.rmtree(data_dir / "questions" / "maze_task")
    write_manifest(data_dir)
    result = build_release(data_dir, releases / "current", version="1.1")
    assert _entries(releases) == ["current"]
    assert result.domains == {"chess": 3}
    assert not (releases / "current" / "data" / "maze").exists()  # no stale shards from 1.0
    assert not (releases / "current" / "assets" / "maze_preview.png").exists()
    assert check_release_files(releases / "current", load_release(releases / "current")) == []


def _running(argv: list[str]) -> list[int]:
    """The pids of processes with exactly this command line (a build's forked workers keep it)."""
    cmdline = "\0".join(argv).encode() + b"\0"
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes() == cmdline:
                pids.append(int(entry.name))
        except OSError:
            pass  # ended while we looked
    return pids


@pytest.mark.slow
def test_temp_folders_of_a_killed_build_are_removed_by_the_next(tmp_path: Path) -> None:
    """``vmeval-hf build`` SIGKILLed mid-way leaves its hidden temp folder beside the output; the
    next build of that output removes it, as its owner no longer runs, and no other: a temp
    folder whose owner runs, and one of another output, are left alone."""
    data_dir = make_tree(tmp_path / "data", {"chess": 20, "maze": 20}, manifest=False)
    frame = noise_png(480)  # 40 questions, 55 MB of frames: the build takes about a second
    for path in (data_dir / "questions").glob("*_task/*/*_frame.png"):
        path.write_bytes(frame)
    releases = tmp_path / "releases"
    argv = [sys.executable, "-m", "vmeval_hf.cli", "build", "--data-dir", str(data_dir),
            "--out", str(releases / "1.0"), "--version", "1.0", "--repo", "org/r", "--workers", "2"]
    killed = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=killable_env(tmp_path))
    prefix = f".1.0.building-{killed.pid}-"
    try:
        deadline = time.monotonic() + 120
        while not (releases.is_dir() and any(p.name.startswith(prefix) and any(p.rglob("*.parquet"))
                                             for p in releases.iterdir())):
            if killed.poll() is not None:
                pytest.fail(f"the build ended (exit {killed.returncode}) before it was seen writing a shard: "
                            f"{killed.communicate()}")
            assert time.monotonic() < deadline, "the build never wrote a shard in its temp folder"
            time.sleep(0.002)
        os.kill(killed.pid, signal.SIGKILL)
        killed.communicate(timeout=30)
        assert killed.returncode == -signal.SIGKILL
        # Its workers outlive it until their domain is done: wait, so the next build does not race
        # them for the folder they still write to.
        while _running(argv):
            assert time.monotonic() < deadline, f"the killed build's workers {_running(argv)} never ended"
            time.sleep(0.05)
    finally:
        if killed.poll() is None:
            killed.kill()
            killed.communicate(timeout=30)
        for pid in _running(argv):
            os.kill(pid, signal.SIGKILL)
    (left,) = releases.iterdir()
    assert left.name.startswith(prefix) and left.is_dir()  # left behind, beside the output
    live = releases / f".1.0.building-{os.getpid()}-live"  # its owner (this process) runs
    other = releases / f".1.1.building-{killed.pid}-other"  # another output's
    for folder in (live, other):
        folder.mkdir()
        (folder / "README.md").write_text("half", encoding="utf-8")

    again = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert _entries(releases) == sorted(["1.0", live.name, other.name])
    assert check_release_files(releases / "1.0", load_release(releases / "1.0")) == []


# --- CLI ----------------------------------------------------------------------------------------


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.chdir(tmp_path)  # no stray .env from the working directory
    monkeypatch.delenv("VMEVAL_HF_REPO", raising=False)
    yield CliRunner()


def test_cli_build_json(runner: CliRunner, tmp_path: Path) -> None:
    data_dir = make_tree(tmp_path / "data", {"chess": 3, "maze": 2})
    out = tmp_path / "rel"
    result = runner.invoke(cli, ["build", "--data-dir", str(data_dir), "--out", str(out), "--version", "1.0",
                                 "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    manifest = load_release(out)
    assert summary == {
        "out": str(out), "version": "1.0", "questions": 5, "domains": {"chess": 3, "maze": 2},
        "shards": 2, "bytes": sum(len(b) for b in snapshot(out).values()),
        "content_sha256": manifest["content_sha256"],
    }
    assert datasets.load_dataset(str(out), "maze", split="test").num_rows == 2


def test_cli_build_workers_option(runner: CliRunner, tmp_path: Path) -> None:
    data_dir = make_tree(tmp_path / "data", {"chess": 3, "maze": 2, "sudoku": 1})
    one = runner.invoke(cli, ["build", "--data-dir", str(data_dir), "--out", str(tmp_path / "one"),
                              "--version", "1.0", "--workers", "1"])
    assert one.exit_code == 0, one.output
    # in a fresh process: this one runs server threads, so it would not fork
    proc = subprocess.run([sys.executable, "-m", "vmeval_hf.cli", "build", "--data-dir", str(data_dir), "--out",
                           str(tmp_path / "three"), "--version", "1.0", "--workers", "3"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert snapshot(tmp_path / "three") == snapshot(tmp_path / "one")
    bad = runner.invoke(cli, ["build", "--data-dir", str(data_dir), "--workers", "0"])
    assert bad.exit_code == 2 and "--workers" in bad.output
    for workers in (0, -1, 1.5):
        with pytest.raises(ConfigError, match=rf"--workers must be a whole number .* got {workers!r}"):
            build_release(data_dir, tmp_path / "four", version="1.0", workers=workers)  # type: ignore[arg-type]
    assert not (data_dir / "releases").exists() and not (tmp_path / "four").exists()


@pytest.mark.parametrize("size", ["12XB", "", "0", 0, -5, "1.5 lots"])
def test_a_bad_max_shard_size_is_named_and_writes_nothing(runner: CliRunner, tmp_path: Path, size: str | int) -> None:
    data_dir = make_tree(tmp_path / "data", {"chess": 2})
    with pytest.raises(ConfigError, match=r"--max-shard-size must be a positive size such as 500MB") as info:
        build_release(data_dir, tmp_path / "rel", version="1.0", max_shard_size=size)
    assert repr(size) in str(info.value)
    for command in ("build", "publish"):
        result = runner.invoke(cli, [command, "--data-dir", str(data_dir), "--max-shard-size", str(size)])
        assert result.exit_code == 2, result.output  # a usage error, before any work
        assert "Invalid value for '--max-shard-size'" in result.output and "Traceback" not in result.output
    assert set(_entries(tmp_path)) <= {"data", "hf_cache"}
    assert not (data_dir / "releases").exists()


def test_cli_build_invalid_tree_names_the_path_and_writes_nothing(runner: CliRunner, tmp_path: Path) -> None:
    data_dir = make_tree(tmp_path / "data", {"chess": 3})
    bad = data_dir / "questions/chess_task/chess_0002/prompt.txt"
    bad.write_bytes(b"\xff\xfe not utf-8")
    out = tmp_path / "rel"
    result = runner.invoke(cli, ["build", "--data-dir", str(data_dir), "--out", str(out), "--version", "1.0",
                                 "--json"])
    assert result.exit_code == 1
    assert "ERROR:" in result.output and str(bad) in result.output
    assert "Traceback" not in result.output
    assert not out.exists()
    assert set(_entries(tmp_path)) <= {"data", "hf_cache"}  # no release, no temp folder
