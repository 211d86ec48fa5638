"""``load_release(..., sources=False)``: the release manifest without its source list (every source
file of the release: about 70 MB of JSON at 100,000 questions), which is streamed to check it
against ``content_sha256`` and never held. What it returns, what it refuses and how much memory it
takes are compared with the whole-file read (``sources=True``)."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from pathlib import Path

import pytest

from tests.support.trees import make_tree
from vmeval_hf._shared.fs import canonical_json
from vmeval_hf.errors import BuildError, IntegrityError
from vmeval_hf.release.build import build_release
from vmeval_hf.release.release_manifest import (
    RELEASE_MANIFEST,
    check_content,
    content_sha256,
    iter_sources,
    load_release,
    load_release_copy,
    sources_of,
)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("release-stream")
    return build_release(make_tree(root / "data", {"chess": 3, "maze": 2}), root / "release", version="1.0").out


def _rewrite(folder: Path, doc: dict, *, text: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RELEASE_MANIFEST).write_text(text if text is not None else canonical_json(doc), encoding="utf-8")
    return folder


def _refusal(folder: Path, sources: bool) -> tuple[type, str]:
    with pytest.raises((BuildError, IntegrityError)) as err:
        load_release(folder, sources=sources)
    return type(err.value), str(err.value)


def test_without_sources_is_the_manifest_less_its_source_list(release: Path) -> None:
    whole = load_release(release)
    light = load_release(release, sources=False)
    assert "sources" not in light and light == {k: v for k, v in whole.items() if k != "sources"}
    assert len(whole["sources"]) == 5 * 4  # the list really was there to stream


def test_sources_out_of_path_order_are_read_whole_and_kept_sorted(release: Path, tmp_path: Path) -> None:
    """A list that cannot be streamed is read whole and kept, in path order, so that ``sources_of``
    (the diff's and verify's walk) still gives it; the rest is what the stream gives."""
    whole = load_release(release)
    doc = {**whole, "sources": list(reversed(whole["sources"]))}  # content_sha256 sorts them: still this content
    folder = _rewrite(tmp_path / "reversed", doc)
    read = load_release(folder, sources=False)
    assert read == whole and read["sources"] == sorted(doc["sources"], key=lambda s: s["path"])
    assert list(sources_of(read, folder / RELEASE_MANIFEST)) == whole["sources"]
    with pytest.raises(IntegrityError, match="not plain entries in path order"):
        list(iter_sources(folder / RELEASE_MANIFEST))  # the file itself would not walk


@pytest.mark.parametrize("damage", ["edited-source", "dropped-source", "not-json", "cut", "no-sources", "not-an-object",
                                    "entry-without-size", "entry-not-an-object", "size-as-text", "sources-an-object",
                                    "file-without-sha256", "file-path-escaping", "file-path-absolute",
                                    "version-a-number", "shards-not-a-list"])
def test_a_damaged_manifest_is_refused_as_the_whole_read_refuses_it(release: Path, tmp_path: Path, damage: str) -> None:
    doc = load_release(release)
    text = None
    if damage == "edited-source":
        doc["sources"][3]["sha256"] = "0" * 64
    elif damage == "dropped-source":
        del doc["sources"][7]
    elif damage == "not-json":
        text = canonical_json(doc).replace('"files"', "'files'", 1)
    elif damage == "cut":
        text = canonical_json(doc)[:-200]
    elif damage == "no-sources":
        del doc["sources"]
    elif damage == "entry-without-size":
        del doc["sources"][2]["size"]
    elif damage == "entry-not-an-object":
        doc["sources"][2] = "chess_task/chess_0000/prompt.txt"
    elif damage == "size-as-text":
        doc["sources"][2]["size"] = str(doc["sources"][2]["size"])
    elif damage == "sources-an-object":
        doc["sources"] = {"chess_task/chess_0000/prompt.txt": doc["sources"][0]}
    elif damage == "file-without-sha256":
        del doc["files"][0]["sha256"]
    elif damage == "file-path-escaping":
        doc["files"][0]["path"] = "data/../../../etc/passwd"
    elif damage == "file-path-absolute":
        doc["files"][0]["path"] = "/etc/passwd"
    elif damage == "version-a-number":
        doc["version"] = 1.0
    elif damage == "shards-not-a-list":
        doc["shards"] = "data/chess.parquet"
    else:
        text = json.dumps([doc])
    folder = _rewrite(tmp_path / damage, doc, text=text)
    assert _refusal(folder, sources=False) == _refusal(folder, sources=True)
    kind, message = _refusal(folder, sources=False)
    assert message.startswith(str(folder / RELEASE_MANIFEST)) and "rebuild" in message
    assert kind is (IntegrityError if damage.endswith("-source") else BuildError)
    with pytest.raises((BuildError, IntegrityError)) as split:  # publish_to_hub's read, then its later check
        check_content(load_release(folder, sources=False, content=False), folder)
    assert (type(split.value), str(split.value)) == (kind, message)
    if damage.startswith(("entry", "size")):
        assert "source entry 2 is not a {path, size, sha256} entry" in message
        unchecked = load_release(folder, content=False) if damage != "sources-an-object" else None
        with pytest.raises(BuildError) as later:  # the check publish_to_hub leaves for later says the same
            check_content(unchecked, folder)
        assert str(later.value) == message
    expected = {"file-without-sha256": "files entry 0 is not a {path, size, sha256} entry",
                "file-path-escaping": 'files entry 0 names a path outside the release ("data/../../../etc/passwd")',
                "file-path-absolute": 'files entry 0 names a path outside the release ("/etc/passwd")',
                "version-a-number": "its version is not a string (1.0)",
                "shards-not-a-list": "its shards are not a list"}.get(damage)
    if expected is not None:  # before: a raw KeyError or TypeError, or a file outside the release read
        assert expected in message and load_release(release)["files"]  # the intact one still reads


def test_the_content_check_left_for_later_is_the_one_load_release_makes(release: Path, tmp_path: Path) -> None:
    """``content=False`` reads a manifest with an edited source list without the check, and
    ``check_content`` then refuses it with the very error ``load_release`` gives; an intact one
    passes both. Read without its sources and unchecked, the document is read alone, and
    ``check_content`` streams the list from the file."""
    whole = load_release(release)
    assert load_release(release, content=False) == whole
    check_content(whole, release)
    doc = {**whole, "sources": [{**whole["sources"][0], "size": whole["sources"][0]["size"] + 1},
                                *whole["sources"][1:]]}
    folder = _rewrite(tmp_path / "edited", doc)
    kind, message = _refusal(folder, sources=True)
    assert kind is IntegrityError and "content_sha256 does not match its source list" in message
    unchecked = load_release(folder, content=False)
    assert unchecked["sources"] == doc["sources"]
    with pytest.raises(IntegrityError) as err:
        check_content(unchecked, folder)
    assert str(err.value) == message and str(folder / RELEASE_MANIFEST) in message
    head = load_release(folder, sources=False, content=False)  # the document alone: the list is not read
    assert head == {k: v for k, v in doc.items() if k != "sources"}
    with pytest.raises(IntegrityError) as err:
        check_content(head, folder)  # streamed from the file now
    assert str(err.value) == message
    check_content(load_release(release, sources=False, content=False), release)


@pytest.mark.parametrize("damage", ["edited-source", "not-json", "cut", "no-sources", "not-an-object",
                                    "entry-without-size", "file-path-escaping"])
def test_a_damaged_downloaded_copy_is_refused_naming_where_it_came_from(release: Path, tmp_path: Path,
                                                                        damage: str) -> None:
    """``load_release_copy``: the same checks as a local read, but the error names the remote copy
    (not the scratch file it was downloaded to) and says to re-publish, never to rebuild."""
    doc = load_release(release)
    text = {"not-json": canonical_json(doc).replace('"files"', "'files'", 1), "cut": canonical_json(doc)[:-200],
            "not-an-object": json.dumps([doc])}.get(damage)
    if damage == "edited-source":
        doc["sources"][3]["sha256"] = "0" * 64
    elif damage == "no-sources":
        del doc["sources"]
    elif damage == "entry-without-size":
        del doc["sources"][2]["size"]
    elif damage == "file-path-escaping":
        doc["files"][0]["path"] = "../outside.parquet"
    folder = _rewrite(tmp_path / damage, doc, text=text)
    where = "s3://bucket/20250101/release/vmeval_release.json"
    with pytest.raises(IntegrityError) as err:
        load_release_copy(folder / RELEASE_MANIFEST, where)
    assert str(err.value).startswith(f"{where}: ") and err.value.path == where
    assert "re-publish that version" in str(err.value) and "rebuild" not in str(err.value)
    assert str(folder) not in str(err.value)


def test_an_intact_downloaded_copy_reads_as_the_local_read_without_sources(release: Path) -> None:
    assert load_release_copy(release / RELEASE_MANIFEST, "hf://datasets/o/r@1.0/vmeval_release.json") == \
        load_release(release, sources=False)


def test_the_source_list_is_never_held(release: Path, tmp_path: Path) -> None:
    """20,000 source entries (about 2.7 MB of JSON): streamed, the read's traced peak stays a small
    part of the file; read whole, it is several times the file."""
    doc = load_release(release)
    doc["sources"] = [{"path": f"chess_task/chess_{i:06d}/prompt.txt", "sha256": hashlib.sha256(b"%d" % i).hexdigest(),
                       "size": 100 + i} for i in range(20_000)]
    doc["content_sha256"] = content_sha256(doc["sources"])
    folder = _rewrite(tmp_path / "big", doc)
    size = (folder / RELEASE_MANIFEST).stat().st_size

    def peak(sources: bool) -> int:
        tracemalloc.start()
        try:
            load_release(folder, sources=sources)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert peak(False) < size / 8 < size < peak(True)


# -- source lists the build would not write ------------------------------------------------------

_AWKWARD = 'chess_task/a",\n      "size": 1\n    },\n    {/x.txt'  # the layout's own text, inside a path


def _blind_compact(text: str) -> str:
    """The list's text with the layout's whitespace taken out and nothing else checked: what a
    text check that trusted any text would hash."""
    inner = text[text.index('"sources": [') + len('"sources": ['):text.index("\n  ]", text.index('"sources": ['))]
    for old, new in (('\n      "path": ', '"path":'), ('\n      "sha256": ', '"sha256":'),
                     ('\n      "size": ', '"size":'), ("\n    ", ""), ("\n  ", "")):
        inner = inner.replace(old, new)
    return f"[{inner}]"


@pytest.mark.parametrize("case", ["as-built", "awkward-path", "beyond-ascii", "escaped", "keys-reordered",
                                  "two-space-entries", "newline-in-a-path", "out-of-order", "edited",
                                  "edited-awkward", "forged-size-as-text", "forged-escape", "forged-keys-reordered",
                                  "forged-duplicate-key", "forged-newline-in-a-string"])
def test_a_list_the_build_would_not_write_reads_as_json_loads_reads_it(release: Path, tmp_path: Path,
                                                                        case: str) -> None:
    """Text the build would not write (a path beyond ASCII or with an escape, another layout,
    entries out of order) reads, streamed or read alone then checked, as ``json.loads`` reads it,
    and an edit is refused either way. ``forged-*``: entries the build would not write, with a
    ``content_sha256`` forged to match their text once the layout's whitespace is taken out: a
    check of the text as it stands took them (f5e69e3; withdrawn in the commit after it);
    they are refused as the whole read refuses them."""
    from vmeval_hf.release.release_manifest import manifest_text

    doc = load_release(release)
    rename = {"awkward-path": _AWKWARD, "edited-awkward": _AWKWARD, "beyond-ascii": "chess_task/échecs/ü.txt",
              "newline-in-a-path": "chess_task/a\nb.txt"}.get(case)
    if rename is not None:
        doc["sources"][0] = {**doc["sources"][0], "path": rename}
        doc["sources"].sort(key=lambda e: e["path"])
    doc["content_sha256"] = content_sha256(doc["sources"])
    text = manifest_text(doc)
    first, second = doc["sources"][0], doc["sources"][1]
    if case in ("escaped", "forged-escape"):  # the same path, an escape where the build writes the letter
        text = text.replace('"path": "chess_task/', '"path": "\\u0063hess_task/', 1)
    elif case in ("keys-reordered", "forged-keys-reordered"):
        text = text.replace(f'"path": {json.dumps(first["path"])},\n      "sha256": "{first["sha256"]}"',
                            f'"sha256": "{first["sha256"]}",\n      "path": {json.dumps(first["path"])}', 1)
    elif case == "two-space-entries":
        text = text.replace("\n      ", "\n        ")
    elif case == "out-of-order":  # the first two entries swapped: content_sha256 sorts them, the file does not
        one, two = (_indented_entry(e) for e in (first, second))
        text = text.replace(f"{one},\n    {two}", f"{two},\n    {one}", 1)
    elif case == "edited":
        text = text.replace(f'"size": {second["size"]}\n', f'"size": {second["size"] + 1}\n', 1)
    elif case == "edited-awkward":  # the path's text made into the layout's: another path, and one entry more
        text = text.replace('a\\",\\n      \\"size\\": 1\\n    },\\n    {/x.txt',
                            'a",\n      "size": 1\n    },\n    {"path": "/x.txt', 1)
    elif case == "forged-size-as-text":
        text = text.replace(f'"size": {second["size"]}\n', f'"size": "{second["size"]}"\n', 1)
    elif case == "forged-duplicate-key":
        text = text.replace(f'"size": {second["size"]}\n', f'"size": 1,\n      "size": {second["size"]}\n', 1)
    elif case == "forged-newline-in-a-string":  # a raw newline (not JSON) inside a path, in the layout's shape
        text = text.replace('"path": "chess_task/', '"path": "chess_task/\n    ', 1)
    if case.startswith("forged"):
        forged = hashlib.sha256(_blind_compact(text).encode("utf-8")).hexdigest()
        text = text.replace(doc["content_sha256"], forged)
        doc["content_sha256"] = forged
    folder = _rewrite(tmp_path / case, doc, text=text)
    if case.startswith(("edited", "forged")):
        assert _refusal(folder, sources=False) == _refusal(folder, sources=True)
        kind, message = _refusal(folder, sources=False)
        assert "rebuild the release" in message
        with pytest.raises(kind) as split:  # publish_to_hub's read, then its later check
            check_content(load_release(folder, sources=False, content=False), folder)
        assert str(split.value) == message
        return
    whole = load_release(folder)
    assert json.loads(text) == whole and sorted(whole["sources"], key=lambda e: e["path"]) == doc["sources"]
    light = load_release(folder, sources=False)  # a list out of order is read whole, and kept (sorted)
    assert ("sources" in light) == (case == "out-of-order")
    assert {k: v for k, v in light.items() if k != "sources"} == {k: v for k, v in whole.items() if k != "sources"}
    check_content(load_release(folder, sources=False, content=False), folder)


def _indented_entry(e: dict) -> str:
    return json.dumps(e, indent=2, sort_keys=True).replace("\n", "\n    ")


# -- manifests whose list was checked before, known by their bytes --------------------------------


def test_a_list_checked_once_is_known_by_the_manifests_bytes(release: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The build remembers the list it wrote; a manifest written otherwise is walked once, then
    known. A known manifest is not walked again (the walk is made to fail here to show it), and
    only those very bytes are known: a copy with one byte of the list changed is walked and
    refused, also when the cache holds a key for its bytes with another content_sha256."""
    from vmeval_hf.release import release_manifest as rm

    def key(folder: Path) -> bytes:
        raw = (folder / RELEASE_MANIFEST).read_bytes()
        return rm._list_key(hashlib.sha256(raw).digest(), json.loads(raw)["content_sha256"])

    assert rm._checked_lists().known(key(release))  # remembered by the build
    doc = load_release(release)
    other = _rewrite(tmp_path / "other", {**doc, "version": "9.9"})  # the same list, other bytes
    assert not rm._checked_lists().known(key(other))
    assert load_release(other, sources=False)["version"] == "9.9"
    assert rm._checked_lists().known(key(other))  # walked, found to match: remembered

    doc["sources"][3] = {**doc["sources"][3], "size": doc["sources"][3]["size"] + 1}  # content_sha256 kept
    edited = _rewrite(tmp_path / "edited", doc)
    cache = rm._checked_lists()
    cache.remember(rm._list_key(hashlib.sha256((edited / RELEASE_MANIFEST).read_bytes()).digest(), "0" * 64))
    cache.flush()
    with pytest.raises(IntegrityError, match="content_sha256 does not match its source list"):
        load_release(edited, sources=False)

    def no_walk(*_: object, **__: object) -> None:
        raise AssertionError("walked")

    monkeypatch.setattr(rm, "object_without_items", no_walk)
    light = load_release(release, sources=False)  # known: not walked
    assert light == {k: v for k, v in load_release(release).items() if k != "sources"}
    check_content(load_release(other, sources=False, content=False), other)
    with pytest.raises(AssertionError, match="walked"):
        load_release(_rewrite(tmp_path / "third", {**load_release(release), "version": "9.8"}), sources=False)


def test_the_lists_checked_are_kept_in_the_cache_folder(release: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache lives in ``VMEVAL_CACHE_DIR`` beside the frame verdicts; with an empty one every
    list is walked again (and remembered there), and one that cannot be made costs only the
    shortcut: the list is walked and the read succeeds."""
    from vmeval_hf.release import release_manifest as rm

    monkeypatch.setenv("VMEVAL_CACHE_DIR", str(tmp_path / "fresh"))
    assert load_release(release, sources=False)["version"] == "1.0"
    assert [p.name for p in (tmp_path / "fresh").glob("*.sqlite3")] == [f"release-lists-v{rm.LIST_CHECK_VERSION}.sqlite3"]
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("VMEVAL_CACHE_DIR", str(tmp_path / "a-file"))
    assert load_release(release, sources=False)["version"] == "1.0"


def test_a_builds_manifest_file_is_its_canonical_text(release: Path) -> None:
    """``publish`` takes the sha256 of the file the build wrote as the release's own hash, and
    ``verify`` compares the Hub's copy with those bytes: both rest on the file being exactly the
    canonical text of the manifest it holds."""
    from vmeval_hf.hub import release_sha256

    raw = (release / RELEASE_MANIFEST).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == release_sha256(load_release(release))
    assert raw.decode("utf-8") == canonical_json(load_release(release))


# -- iter_sources: the source list walked an entry at a time ----------------------------------------


def test_iter_sources_gives_the_source_list_in_order(release: Path) -> None:
    from vmeval_hf.release.release_manifest import iter_sources, sources_of

    whole = load_release(release)["sources"]
    assert list(iter_sources(release / RELEASE_MANIFEST)) == whole
    light = load_release(release, sources=False)
    assert list(sources_of(light, release / RELEASE_MANIFEST)) == whole
    assert sources_of(load_release(release), None) == whole  # a manifest holding its list gives it
    with pytest.raises(ValueError, match="needs the file"):
        sources_of(light, None)


@pytest.mark.parametrize("damage", ["reversed", "missing", "no-sources", "cut"])
def test_iter_sources_names_the_file_of_a_list_it_cannot_walk(release: Path, tmp_path: Path, damage: str) -> None:
    from vmeval_hf.release.release_manifest import iter_sources

    doc = load_release(release)
    folder = tmp_path / damage
    if damage == "reversed":
        doc["sources"] = list(reversed(doc["sources"]))
        _rewrite(folder, doc)
    elif damage == "no-sources":
        del doc["sources"]
        _rewrite(folder, doc)
    elif damage == "cut":
        text = canonical_json(doc)
        _rewrite(folder, doc, text=text[: text.index('"sources"') + 400])
    path = folder / RELEASE_MANIFEST
    with pytest.raises(IntegrityError) as err:
        list(iter_sources(path))
    assert str(path) in str(err.value) and "rebuild the release" in str(err.value)
    expected = {"reversed": "not plain entries in path order", "missing": "unreadable", "no-sources": "not a release manifest with a source list",
                "cut": "unreadable"}[damage]
    assert expected in str(err.value)


def test_iter_sources_holds_an_entry_at_a_time(tmp_path: Path) -> None:
    """A 40,000-entry list (about 4 MB of JSON) walked in far less memory than the list itself."""
    from vmeval_hf.release.release_manifest import iter_sources

    sources = [{"path": f"chess_task/chess_{i:06d}/prompt.txt", "sha256": hashlib.sha256(str(i).encode()).hexdigest(),
                "size": i} for i in range(40_000)]
    folder = _rewrite(tmp_path / "big", {"schema": 1, "sources": sources})
    size = (folder / RELEASE_MANIFEST).stat().st_size
    del sources
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_sources(folder / RELEASE_MANIFEST))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 40_000
    assert peak < size / 10, (peak, size)
