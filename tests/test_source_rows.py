"""Source rows written out sorted as they come (release_manifest.SourceRows, merge_chunks): a build
worker holds a chunk of them at most, never its domain's list; the runs (and so the release
manifest and its content_sha256) are the bytes the whole list sorted in memory gives."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from tests.support.files import snapshot
from tests.support.trees import make_question, make_tree
from vmeval_hf.release import release_manifest
from vmeval_hf.release.build import build_release
from vmeval_hf.release.release_manifest import (
    SourceRow,
    SourceRows,
    SourceRun,
    content_sha256,
    content_sha256_runs,
    merge_chunks,
    read_runs,
    write_source_run,
)
from vmeval_hf.tree.manifest_sync import write_manifest

#: paths as a domain's questions give them: natural id order (9999 before 10000) is not path
#: order, and a question's own files do not come in name order either; plus paths that JSON
#: escapes (quotes, backslashes, control characters, non-ASCII), whose order is the raw string's
PATHS = [f"chess_task/chess_{i:04d}/{name}" for i in (9, 10, 99, 100, 9998, 9999, 10000, 10001, 100000)
         for name in ("prompt.txt", "first_frame.png", "final_frame.png", "question_metadata.json")] + [
    'odd_task/odd_0001/"quoted"\\.png', "odd_task/odd_0001/ !.png", "odd_task/odd_0001/\x01\t\n.png",
    "ü_task/ü_0002/迷.png", "ü_task/ü_0002/é.png"]


def _rows(seed: int = 7) -> list[SourceRow]:
    rows = [(p, 10 ** (i % 7), hashlib.sha256(p.encode()).hexdigest()) for i, p in enumerate(PATHS)]
    random.Random(seed).shuffle(rows)
    return rows


def _bytes(run: SourceRun | None) -> tuple[bytes, bytes, str, str] | None:
    if run is None:
        return None
    return run.compact.read_bytes(), run.indented.read_bytes(), run.first, run.last


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 7, 10_000])
@pytest.mark.parametrize("fan_in", [2, 3, 64])
def test_a_run_written_in_sorted_chunks_is_the_run_of_the_sorted_list(tmp_path: Path, chunk_rows: int,
                                                                     fan_in: int) -> None:
    rows = _rows()
    expected = _bytes(write_source_run(sorted(rows), tmp_path / "whole" / "chess"))
    sorter = SourceRows(tmp_path / "chunked" / "chess", chunk_rows)
    for row in rows:
        sorter.add(row)
        assert len(sorter.rows) < chunk_rows  # never more held than a chunk
    run = sorter.run(fan_in)
    assert _bytes(run) == expected
    assert sorted(p.name for p in (tmp_path / "chunked").iterdir()) == ["chess.compact", "chess.indented"]


def test_chunks_of_several_writers_merge_into_the_run_of_all_their_rows(tmp_path: Path) -> None:
    """As the Ray engine joins its shard tasks' rows into their domain's run."""
    rows = _rows(seed=3)
    expected = _bytes(write_source_run(sorted(rows), tmp_path / "whole"))
    chunks = []
    for i, part in enumerate((rows[:5], rows[5:6], rows[6:])):
        sorter = SourceRows(tmp_path / "parts" / f"shard-{i}", chunk_rows=4)
        for row in part:
            sorter.add(row)
        chunks += sorter.chunks()
    assert len(chunks) > 3
    assert _bytes(merge_chunks(chunks, tmp_path / "domain", fan_in=2)) == expected
    assert not any((tmp_path / "parts").iterdir())  # the chunks were removed


def test_no_rows_make_no_run_and_no_file(tmp_path: Path) -> None:
    assert SourceRows(tmp_path / "a").run() is None
    assert merge_chunks([], tmp_path / "b") is None
    assert list(tmp_path.iterdir()) == []


def test_runs_read_back_give_each_entry_and_the_content_hash(tmp_path: Path) -> None:
    rows = sorted(_rows())
    runs = [run for i, part in enumerate((rows[:20], rows[20:])) if (run := write_source_run(part, tmp_path / str(i)))]
    entries = list(read_runs(runs))
    assert entries == [e for r in runs for e in json.loads(f"[{r.compact.read_text(encoding='utf-8')}]")]
    assert [(e["path"], e["size"], e["sha256"]) for e in entries] == rows
    assert content_sha256_runs(runs) == content_sha256(entries)


def _tree(root: Path) -> Path:
    """A small tree whose chess ids cross from 4 to 5 digits (id order is not path order there)."""
    data = make_tree(root, {"maze": 2, "sudoku": 3}, manifest=False)
    for i in (9998, 9999, 10000, 10001):
        make_question(data / "questions", "chess", i)
    write_manifest(data)
    return data


def test_a_build_whose_sources_fill_many_chunks_writes_the_same_release(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process and in forked workers (whose listings cross to the parent in a file)."""
    data = _tree(tmp_path / "data")
    build_release(data, tmp_path / "one-chunk", version="1.0", workers=1)
    expected = snapshot(tmp_path / "one-chunk")
    monkeypatch.setattr(release_manifest, "CHUNK_ROWS", 3)  # a chess question has 4 files: 6 chunks of 3
    monkeypatch.setattr(release_manifest, "FAN_IN", 2)  # merged in rounds
    for workers in (1, 2):
        build_release(data, tmp_path / f"chunked-{workers}", version="1.0", workers=workers)
        assert snapshot(tmp_path / f"chunked-{workers}") == expected
    assert json.loads((tmp_path / "one-chunk" / "vmeval_release.json").read_text())["sources"][0]["path"] == \
        "chess_task/chess_10000/final_frame.png"
