"""The S3 mirror's file list on disk (`vmeval_hf.s3.files`): the manifest written a file at a
time, the comparisons walked side by side, the send order, the copy sources, and a mirror read
back a page at a time giving the same bucket as one read whole; against moto on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.support.s3 import keys_in, raw_client
from tests.test_mirror import DAY, make_release, make_tree
from vmeval_hf._shared.fs import canonical_json, sha256_bytes, sha256_file
from vmeval_hf._shared.ordered import outer_join
from vmeval_hf.config import Settings
from vmeval_hf.errors import IntegrityError, S3ConflictError
from vmeval_hf.s3 import files as files_mod
from vmeval_hf.s3.files import MirrorFiles, mirror_files
from vmeval_hf.s3.layout import (
    canonical_sha256,
    compare_files,
    file_list,
    manifest_file,
    manifest_head,
    scan,
    tree_differences,
    write_manifest,
)
from vmeval_hf.s3.mirror import MirrorManifest, mirror_version, read_manifest

REPO = Path(__file__).resolve().parents[1]


#: entries as mirror_version writes them (one f-string each in canonical_parts), with the strings
#: JSON must escape, beside look-alikes that must go through json: a bool size, a None composite
PLAIN_FILES = [
    {"key": "data/q/\u00e9t\u00e9_001/prompt.txt", "size": 0, "sha256": "0" * 64},
    {"key": 'data/q/say "hi"\\\n\t\x01\u2028/x.png', "size": 10**12, "sha256": "a" * 64,
     "composite_sha256": "QUJD/+==-3"},
    {"key": "data/r", "size": True, "sha256": "b" * 64},
    {"key": "data/s", "size": 5, "sha256": "c" * 64, "composite_sha256": None},
    {"key": "data/t", "size": 5.0, "sha256": "d" * 64},
]


@pytest.mark.parametrize("files", [[], [{"key": "a"}], None, PLAIN_FILES])
def test_the_canonical_hash_of_a_manifest_read_a_file_at_a_time_is_the_whole_documents(
        tmp_path: Path, files: list[dict[str, Any]] | None) -> None:
    """Entries of any shape (extra and nested fields, non-ASCII, quotes and newlines in strings,
    the plain entries the mirror writes and their look-alikes), head fields sorting before and
    after ``files``: streamed from a compact copy of the document, the hash is that of
    ``canonical_json`` of the whole, and ``write_manifest`` writes exactly that text."""
    if files is None:
        files = [{"key": f"data/q/\u00e9t\u00e9_{i:03d}/prompt.txt", "size": i, "sha256": f"{i:064x}",
                  "extra": {"nested": [1, {"b": "say \"hi\"\n"}], "a": None}} for i in range(40)]
    doc = {"schema": 1, "version": "1.0", "content_sha256": None, "date": "20250101", "hub": {"repo": "o/r"},
           "aaa": [1, 2], "tool": "vmeval-hf x", "files": files}
    want = sha256_bytes(canonical_json(doc).encode("utf-8"))
    head = {k: v for k, v in doc.items() if k != "files"}
    assert canonical_sha256(head, iter(files)) == want
    compact = tmp_path / "MANIFEST.json"
    compact.write_text(json.dumps(doc, separators=(",", ":"), ensure_ascii=True), encoding="utf-8")
    assert MirrorManifest(head, path=compact).sha256() == want
    assert MirrorManifest.of(doc).sha256() == want
    written = tmp_path / "written.json"
    sent = [dict(f, size=f.get("size", 0), sha256=f.get("sha256", "")) for f in files]  # what write_manifest needs
    assert write_manifest(written, head, sent) == sha256_file(written)
    assert written.read_text(encoding="utf-8") == canonical_json({**doc, "files": [manifest_file(f) for f in sent]})


def test_outer_join_pairs_equal_keys_and_keeps_each_sides_own_in_order() -> None:
    left = [1, 3, 4, 9]
    right = ["2", "3", "9", "10"]
    got = list(outer_join(left, right, lambda x: x, int))
    assert got == [(1, None), (None, "2"), (3, "3"), (4, None), (9, "9"), (None, "10")]
    assert list(outer_join([], right[:1], int, int)) == [(None, "2")]
    assert list(outer_join(left[:1], [], int, int)) == [(1, None)]


@pytest.mark.parametrize("files", [
    [],
    [{"key": "data/a.png", "size": 3, "sha256": "ab" * 32, "path": "/x/a.png", "present": True}],
    [{"key": "data/a", "size": 1, "sha256": "s", "composite_sha256": "c2Vl-2"},
     {"key": "data/b/ü é.txt", "size": 2, "sha256": "t", "copy_from": "data/b"},
     {"key": "release/README.md", "size": 0, "sha256": "u", "composite_sha256": ""}],
])
def test_the_manifest_written_a_file_at_a_time_is_canonical_json_of_the_whole_document(
        tmp_path: Path, files: list[dict[str, Any]]) -> None:
    """Byte for byte what the whole document would be (so a re-run compares equal, and the hash
    in the version log is the hash of the object), whatever the entries carry besides."""
    head = manifest_head(version="1.0", content_sha256="cd" * 32, date=DAY, hub={"repo": "org/x", "note": "ñ"})
    sha = write_manifest(tmp_path / "MANIFEST.json", head, files)
    whole = canonical_json({**head, "files": file_list(files)})
    assert (tmp_path / "MANIFEST.json").read_text(encoding="utf-8") == whole
    assert sha == sha256_bytes(whole.encode("utf-8"))
    assert json.loads(whole)["files"] == [
        {k: v for k, v in f.items() if k in ("key", "size", "sha256") or (k == "composite_sha256" and v)}
        for f in files]


def test_file_lists_compared_side_by_side_name_each_kind_of_difference() -> None:
    remote = [{"key": "a", "size": 1, "sha256": "x"}, {"key": "b", "size": 2, "sha256": "y"},
              {"key": "d", "size": 4, "sha256": "w", "composite_sha256": "p-2"}]
    local = [{"key": "b", "size": 2, "sha256": "Y"}, {"key": "c", "size": 3, "sha256": "z"},
             {"key": "d", "size": 4, "sha256": "w"}]
    diff = compare_files(remote, local)
    assert (diff.changed, diff.only_remote, diff.only_local) == (["b"], ["a"], ["c"])
    assert not compare_files(remote, remote) and diff


def test_tree_differences_name_the_first_source_problem_before_files_that_are_no_source() -> None:
    release = {"kind": "questions"}
    entries = [{"key": "data/outputs/x", "size": 1, "sha256": "o"},
               {"key": "data/questions/a/1", "size": 1, "sha256": "s1"},
               {"key": "data/questions/a/2", "size": 1, "sha256": "new"},
               {"key": "data/questions/vmeval_dataset.json", "size": 9, "sha256": "m"},
               {"key": "data/questions/z/extra", "size": 1, "sha256": "e"}]
    sources = [{"path": "a/1", "size": 1, "sha256": "s1"}, {"path": "a/2", "size": 1, "sha256": "old"},
               {"path": "b/3", "size": 1, "sha256": "s3"}]
    wrong = tree_differences(entries, release, sources)
    assert wrong.count == 3  # a/2 changed, b/3 gone, z/extra no source; the dataset manifest and outputs aside
    assert wrong.first is not None and wrong.first[0] == "data/questions/a/2" and "has sha256 new" in wrong.first[1]
    only_extra = tree_differences(entries[:2] + entries[4:], release, sources[:1])
    assert only_extra == (("data/questions/z/extra", "is not a source of the release"), 1)
    assert tree_differences(entries[1:2], release, sources[:1]) == (None, 0)


def _entry(key: str, size: int) -> dict[str, Any]:
    return {"key": key, "path": f"/tree/{key}", "size": size, "sha256": f"h{key}"}


def _filled(folder: Path, entries: list[dict[str, Any]]) -> MirrorFiles:
    files = MirrorFiles(folder)
    files.conn.executemany("INSERT INTO files (key, path, size, sha256) VALUES (?, ?, ?, ?)",
                           [(e["key"].encode(), e["path"].encode(), e["size"], e["sha256"]) for e in entries])
    files.count = len(entries)
    return files


def test_files_are_sent_held_ones_first_then_largest_first_across_pages(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files_mod, "PAGE", 2)
    entries = [_entry("a", 5), _entry("b", 50), _entry("c", 7), _entry("d", 50), _entry("e", 1), _entry("f", 9)]
    files = _filled(tmp_path, entries)
    files.mark_present(["c", "f"])
    pages = list(files.in_send_order())
    assert [len(p) for p in pages] == [2, 2, 2]
    order = [(e["key"], bool(e.get("present"))) for page in pages for e in page]
    assert order == [("c", True), ("f", True), ("b", False), ("d", False), ("a", False), ("e", False)]
    assert [e["key"] for e in files.entries()] == list("abcdef")
    assert (files.held(), files.to_send()) == (2, (4, 106, 0, 0))


def test_copy_sources_prefer_the_same_key_then_any_key_with_the_same_content(tmp_path: Path) -> None:
    files = _filled(tmp_path, [_entry("a", 1), _entry("b", 2), _entry("c", 3), _entry("d", 4)])
    previous = [{"key": "a", "size": 1, "sha256": "ha"},         # same key, same content
                {"key": "b", "size": 2, "sha256": "other"},      # same key, other content
                {"key": "old/c", "size": 3, "sha256": "hc"},     # same content elsewhere, twice: the last
                {"key": "zz/c", "size": 3, "sha256": "hc"},
                {"key": "x", "size": 99, "sha256": "hd"}]        # same sha256, other size
    assert files.set_copy_sources(previous) == 2
    assert {e["key"]: e.get("copy_from") for e in files.entries()} == {"a": "a", "b": None, "c": "zz/c", "d": None}
    assert files.to_send() == (2, 6, 2, 4)


def _objects_without_manifest(settings: Settings, day: str) -> dict[str, bytes]:
    return {k.removeprefix(f"{day}/"): v for k, v in keys_in(settings, f"{day}/").items()
            if not k.endswith("MANIFEST.json")}


def test_a_mirror_read_a_page_at_a_time_is_the_mirror_read_whole(
        tmp_path: Path, s3_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of 2 rows: the same objects and the same manifest (but for its date) as one page;
    a resumed mirror checks what landed and sends the rest; an incremental one copies it all."""
    data = make_tree(tmp_path, questions=5)
    rel = make_release(tmp_path, data)
    whole = mirror_version(data, settings=s3_settings, date="20250101", release_dir=rel)
    monkeypatch.setattr(files_mod, "PAGE", 2)
    paged = mirror_version(data, settings=s3_settings, date=DAY, release_dir=rel)
    assert (paged.files, paged.bytes, paged.uploaded) == (whole.files, whole.bytes, whole.uploaded) == \
        (whole.files, whole.bytes, whole.files)
    assert _objects_without_manifest(s3_settings, DAY) == _objects_without_manifest(s3_settings, "20250101")
    m1, m2 = read_manifest(settings=s3_settings, date="20250101"), read_manifest(settings=s3_settings, date=DAY)
    assert {**m1, "date": DAY} == m2 and len(m2["files"]) == whole.files

    # interrupted: the manifest and three objects never landed
    client = raw_client(s3_settings)
    gone = sorted(_objects_without_manifest(s3_settings, DAY))[1:4]
    for key in [*gone, "MANIFEST.json"]:
        client.delete_object(Bucket=s3_settings.s3_bucket, Key=f"{DAY}/{key}")
    resumed = mirror_version(data, settings=s3_settings, date=DAY, release_dir=rel)
    assert (resumed.uploaded, resumed.skipped) == (3, whole.files - 3)
    assert read_manifest(settings=s3_settings, date=DAY) == m2

    copied = mirror_version(data, settings=s3_settings, date="20250116", release_dir=rel, incremental=True)
    assert (copied.copied, copied.uploaded, copied.copied_from) == (whole.files, 0, f"s3://{s3_settings.s3_bucket}/{DAY}/")
    assert _objects_without_manifest(s3_settings, "20250116") == _objects_without_manifest(s3_settings, DAY)


def test_a_prefix_whose_manifest_lists_other_files_is_refused_naming_them(
        tmp_path: Path, s3_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files_mod, "PAGE", 2)
    data = make_tree(tmp_path)
    mirror_version(data, settings=s3_settings, date=DAY)
    before = keys_in(s3_settings)
    (data / "questions" / "chess_task" / "chess_0000" / "prompt.txt").write_text("Changed.\n")
    (data / "outputs" / "pilot" / "new.json").write_text("{}\n")
    with pytest.raises(S3ConflictError, match=r"1 file\(s\) differ, e\.g\. 20250115/data/questions/chess_task/"
                                              r"chess_0000/prompt\.txt; 1 local file\(s\) are not in it") as err:
        mirror_version(data, settings=s3_settings, date=DAY)
    assert err.value.keys == [f"{DAY}/data/questions/chess_task/chess_0000/prompt.txt", f"{DAY}/data/outputs/pilot/new.json"]
    assert keys_in(s3_settings) == before


def test_a_tree_changed_since_its_release_is_refused_before_anything_is_sent(
        tmp_path: Path, s3_settings: Settings) -> None:
    data = make_tree(tmp_path)
    rel = make_release(tmp_path, data)
    (data / "questions" / "maze_task" / "maze_0001" / "prompt.txt").write_text("Edited.\n")
    (data / "questions" / "chess_task" / "chess_0002" / "note.txt").write_text("new\n")
    with pytest.raises(IntegrityError, match=r"maze_0001/prompt\.txt has sha256 .* \(and 1 more\): the data tree "
                                             r"changed after release 1\.0 was built"):
        mirror_version(data, settings=s3_settings, date=DAY, release_dir=rel)
    assert keys_in(s3_settings) == {}


def test_the_file_list_scanned_to_disk_is_the_scan_held_in_memory(tmp_path: Path) -> None:
    data = make_tree(tmp_path, questions=4)
    rel = make_release(tmp_path, data)
    held, _ = scan(data, rel)
    with mirror_files() as files:
        files.scan(data, rel)
        folder = files.folder
        on_disk = list(files.entries())
        assert (files.count, files.bytes, files.has_data) == (len(held), sum(e["size"] for e in held), True)
    assert on_disk == held
    assert not folder.exists()


def test_no_room_for_the_mirror_file_list_is_a_local_file_error_and_sends_nothing(
        tmp_path: Path, s3_settings: Settings) -> None:
    """A disk too full for the file list (a file-size limit stands in for it) is a
    LocalFileError naming the scratch folder and saying what to do; nothing is sent, and no
    scratch folder is left."""
    data = make_tree(tmp_path)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    code = """
        import os, resource, signal, sys, tempfile
        from vmeval_hf.config import Settings
        from vmeval_hf.errors import LocalFileError
        from vmeval_hf.s3.mirror import mirror_version
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write over the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))  # less than one SQLite page
        os.environ["TMPDIR"] = sys.argv[2]
        tempfile.tempdir = None
        try:
            mirror_version(sys.argv[1], settings=Settings.from_env(), date="20250115")
        except LocalFileError as exc:
            print(exc)
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(data), str(tmp)], capture_output=True,
                          text=True, timeout=120, cwd=REPO, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr
    assert f"{tmp}{os.sep}vmeval-mirror-" in proc.stdout and "free some space there" in proc.stdout, proc.stdout
    assert list(tmp.iterdir()) == [] and keys_in(s3_settings) == {}
