"""``indented_array`` / ``array_items``: an array member of a file laid out as ``json.dumps(doc,
indent=2)`` lays it out (the release manifest's source list, as the build writes it) read a slice at
a time by ``json.loads``. Whatever the file, what it gives is what ``member_items`` (the generic
walk) and ``json.loads`` of the whole file give: the same elements, the same document around them,
the same errors; a file of another layout is left to the generic walk."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from vmeval_hf._shared import jsonstream
from vmeval_hf._shared.jsonstream import JsonStreamError, array_items, indented_array, member_items


def _entries(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"path": f"chess_task/chess_{i:06d}/prompt.txt", "sha256": hashlib.sha256(str(i).encode()).hexdigest(),
             "size": i} for i in range(start, start + n)]


def _write(path: Path, doc: Any, **dumps: Any) -> Path:
    path.write_text(json.dumps(doc, **dumps) + "\n", encoding="utf-8")
    return path


def _outcome(items: Any) -> tuple[list[Any], str | None]:
    """The elements given, and the error that ended the walk (its type and words), if any."""
    got: list[Any] = []
    try:
        for element in items:
            got.append(element)
    except (JsonStreamError, jsonstream.Unstreamed, OSError) as exc:
        return got, f"{type(exc).__name__}: {exc}"
    return got, None


@pytest.fixture(autouse=True)
def small_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slices of 512 bytes, so a few hundred entries cross many slice ends."""
    monkeypatch.setattr(jsonstream, "_SLICE", 512)


@pytest.mark.parametrize("n", [1, 2, 7, 300])
def test_the_indented_layout_gives_the_elements_and_the_document_json_gives(tmp_path: Path, n: int) -> None:
    doc = {"content_sha256": "x" * 64, "files": [{"path": "README.md", "size": 3}], "schema": 1,
           "sources": _entries(n), "version": "1.0"}
    path = _write(tmp_path / "m.json", doc, indent=2, sort_keys=True)
    fast = indented_array(path, "sources")
    assert fast is not None
    assert fast.doc == {k: v for k, v in doc.items() if k != "sources"}
    batches = list(fast.batches())
    assert list(itertools.chain.from_iterable(batches)) == doc["sources"] == list(fast.items())
    assert n < 300 or len(batches) > 10  # really read in slices
    assert list(array_items(path, "sources")) == list(member_items(path, "sources")) == doc["sources"]


def test_elements_with_values_nested_and_strings_that_look_like_the_cut(tmp_path: Path) -> None:
    """A cut is made only between elements: a string holding the cut's text (its newline escaped,
    as JSON must) and objects and arrays nested in an element read as ``json.loads`` reads them."""
    tricky = [{"path": "a},\n    {b", "size": 1, "more": {"x": [1, {"y": "},\n    {"}]}},
              {"path": "\u00e9\u4e2d\U0001f600", "size": 2, "list": [[], {}, [[{"z": None}]]]},
              *_entries(200)]
    path = _write(tmp_path / "m.json", {"a": 1, "sources": tricky, "z": [1, 2]}, indent=2)
    assert indented_array(path, "sources") is not None
    assert list(array_items(path, "sources")) == tricky


@pytest.mark.parametrize("layout", ["compact", "indent 4", "indent 1", "empty", "absent", "nested only",
                                    "nested, laid out as the member", "twice", "twice, first nested",
                                    "not an object", "cut", "missing file"])
def test_another_layout_is_left_to_the_generic_walk(tmp_path: Path, layout: str) -> None:
    path, sources = tmp_path / "m.json", _entries(50)
    doc: Any = {"a": 1, "sources": sources, "z": "end"}
    if layout == "compact":
        _write(path, doc)
    elif layout == "indent 4":
        _write(path, doc, indent=4)
    elif layout == "indent 1":
        _write(path, doc, indent=1)
    elif layout == "empty":
        _write(path, {**doc, "sources": []}, indent=2)
    elif layout == "absent":
        _write(path, {"a": 1}, indent=2)
    elif layout == "nested only":
        _write(path, {"a": {"sources": sources}}, indent=2)
    elif layout == "not an object":
        _write(path, [doc], indent=2)
    elif layout == "twice":
        text = json.dumps(doc, indent=2)
        path.write_text(text.replace('"z": "end"', '"z": "end",\n  "sources": [\n    1\n  ]'), encoding="utf-8")
    elif layout == "nested, laid out as the member":  # an inner "sources" at two spaces, the object's own empty
        inner = json.dumps({"sources": sources}, indent=2)
        path.write_text('{\n"a": ' + inner + ',\n"sources": []\n}\n', encoding="utf-8")
    elif layout == "twice, first nested":
        text = json.dumps(doc, indent=2)
        path.write_text(text.replace('"a": 1', '"a": {"sources": [2]}'), encoding="utf-8")
    elif layout == "cut":
        path.write_bytes(json.dumps(doc, indent=2).encode()[:-200])
    if layout != "twice, first nested":  # a nested member of the same name is no reason to walk slowly
        assert indented_array(path, "sources") is None
    assert _outcome(array_items(path, "sources")) == _outcome(member_items(path, "sources"))
    if layout.startswith("nested, laid out"):
        assert list(member_items(path, "sources")) == []  # the object's own, not the inner one


@pytest.mark.parametrize("damage", ["garbage", "missing comma", "bad number", "bad escape", "not utf-8"])
def test_a_slice_that_does_not_parse_ends_as_the_generic_walk_ends(tmp_path: Path, damage: str) -> None:
    """Damage past the first slices, the layout around it intact: elements before it, then the
    generic walk's own error, at the same place in the same words. (Both give a prefix of the list
    first; the generic walk, which decodes a chunk of 64 KiB at a time, may stop sooner on bytes
    that are not UTF-8.)"""
    sources = _entries(300)
    path = _write(tmp_path / "m.json", {"a": 1, "sources": sources, "z": "end"}, indent=2)
    raw = path.read_bytes()
    at = raw.index(b'"chess_task/chess_000200/prompt.txt"')
    bad = {"garbage": b'"chess_task/chess_000200/prompt.txt" @@',
           "missing comma": b'"chess_task/chess_000200/prompt.txt"\n "x": 1',
           "bad number": b'"chess_task/chess_000200/prompt.txt", "n": 01',
           "bad escape": b'"chess_task/chess_000200/prompt\\q.txt"',
           "not utf-8": b'"chess_task/chess_000200/prompt\xff.txt"'}[damage]
    path.write_bytes(raw[:at] + bad + raw[at + len(b'"chess_task/chess_000200/prompt.txt"'):])
    fast = indented_array(path, "sources")
    assert fast is not None  # the layout is found: the damage is met while reading the slices
    got, error = _outcome(array_items(path, "sources"))
    generic, generic_error = _outcome(member_items(path, "sources"))
    assert error == generic_error and error is not None and "JsonStreamError" in error
    assert got == sources[:len(got)] and generic == sources[:len(generic)] and 150 <= len(got) <= 200
    assert generic == got or damage == "not utf-8"


def test_a_file_changed_to_a_shorter_one_while_read_is_an_oserror(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.json", {"sources": _entries(300)}, indent=2)
    fast = indented_array(path, "sources")
    assert fast is not None
    path.write_text("{}", encoding="utf-8")
    with pytest.raises(OSError, match="got shorter"):
        list(fast.batches())


@pytest.mark.parametrize("layout", ["indent 2", "compact", "not an array", "damaged mid-array", "walk refuses"])
def test_object_without_items_gives_what_object_without_gives(tmp_path: Path, layout: str) -> None:
    """The document without the member and what the walk made of its elements, or None, as
    ``object_without`` (the generic walk) gives them, whichever way the file is read."""
    sources = _entries(300)
    doc: Any = {"a": 1, "sources": sources, "z": "end"}
    path = tmp_path / "m.json"
    if layout == "indent 2":
        _write(path, doc, indent=2)
    elif layout == "compact":
        _write(path, doc)
    elif layout == "not an array":
        _write(path, {**doc, "sources": {"x": 1}}, indent=2)
    elif layout == "damaged mid-array":
        raw = json.dumps(doc, indent=2).encode()
        at = raw.index(b'"chess_task/chess_000200/prompt.txt"')
        path.write_bytes(raw[:at] + b"@@" + raw[at:])
    else:
        _write(path, {**doc, "sources": [*sources, "not an entry"]}, indent=2)

    def walk(entries: Any) -> tuple[int, str]:
        h = hashlib.sha256()
        count = 0
        for e in entries:
            if not isinstance(e, dict):
                raise jsonstream.Unstreamed("not an entry")
            h.update(e["path"].encode())
            count += 1
        return count, h.hexdigest()

    def on_stream(stream: jsonstream.JsonStream) -> tuple[int, str]:
        if stream.skip_ws() != "[":
            raise jsonstream.Unstreamed("not an array")
        return walk(stream.value() for _ in stream.items())

    got = jsonstream.object_without_items(path, "sources", walk)
    assert got == jsonstream.object_without(path, "sources", on_stream)
    if layout == "indent 2" or layout == "compact":
        assert got == ({"a": 1, "z": "end"}, walk(iter(sources)))
    else:
        assert got is None
