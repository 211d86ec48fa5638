"""``vmeval_dataset.json`` is read a chunk at a time (it lists every question's full metadata: 100 MB
at 100,000 questions), and reports exactly what parsing the whole text reported: the same problems,
in the same order, with the same words (``json``'s message and position for invalid JSON)."""

from __future__ import annotations

import json
import random
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from vmeval_hf._shared import jsonstream
from vmeval_hf.tree.dataset_manifest import ABSENT, manifest_problems, read_manifest_entries
from vmeval_hf.tree.model import DATASET_MANIFEST, Listed, Problem

# --- the reference: the manifest parsed whole, as it was before it was streamed -----------------------


def _whole_text_problems(qdir: Path, questions: list[Listed], folders: dict[str, str]) -> list[Problem]:
    """What the check reported when it parsed the whole text with ``json.loads`` (kept verbatim)."""
    path = qdir / DATASET_MANIFEST
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        return [Problem(str(path), "manifest_invalid",
                        f"cannot read the manifest ({exc}); run `vmeval-hf manifest` to rewrite it")]
    if not isinstance(doc, dict):
        return [Problem(str(path), "manifest_invalid", "manifest is not a JSON object; run `vmeval-hf manifest`")]
    listed = doc.get("questions")
    if listed is None:
        pairs = doc.get("pairs", [])
        listed = [{"id": p.get("id"), "domain": p.get("domain"), "difficulty": p.get("difficulty")}
                  for p in (pairs if isinstance(pairs, (list, dict, str)) else []) if isinstance(p, dict)]
    if not isinstance(listed, list) or not all(isinstance(e, dict) for e in listed):
        return [Problem(str(path), "manifest_invalid",
                        "manifest `questions` is not a list of objects; run `vmeval-hf manifest`")]
    total = doc.get("total_pairs")
    on_disk = {q.id: {"id": q.id, "domain": q.domain, "difficulty": q.difficulty, "path": q.source_path}
               for q in questions}
    in_file = {str(e.get("id")): e for e in listed}
    problems = []
    fix = "run `vmeval-hf manifest` to rewrite it from the folders"
    seen: set[str] = set()
    for e in listed:
        key = str(e.get("id")).casefold()
        if key in seen:
            problems.append(Problem(str(path), "manifest_duplicate_id",
                                    f"lists {e.get('id')} more than once; {fix}", question=str(e.get("id"))))
        seen.add(key)
    for qid in sorted(set(in_file) - set(folders)):
        problems.append(Problem(str(path), "manifest_lists_missing",
                                f"lists {qid} but no folder holds it; {fix}", question=qid))
    for qid in sorted(set(on_disk) - set(in_file)):
        problems.append(Problem(str(path), "manifest_missing_question",
                                f"does not list {on_disk[qid]['path']}; {fix}", question=on_disk[qid]["path"]))
    for qid in sorted(set(on_disk) & set(in_file)):
        for key in ("domain", "difficulty", "path"):
            if key in in_file[qid] and in_file[qid][key] != on_disk[qid][key]:
                problems.append(Problem(
                    str(path), "manifest_field_differs",
                    f"{qid}: {key} is {in_file[qid][key]!r} in the manifest but {on_disk[qid][key]!r} "
                    f"in the folder; {fix}", question=on_disk[qid]["path"]))
    if total is not None and total != len(listed):
        problems.append(Problem(str(path), "manifest_count_differs",
                                f"total_pairs is {total} but {len(listed)} questions are listed; {fix}"))
    return problems


DISK = [Listed(f"chess_{i:04d}", "chess", "easy") for i in range(5)] + [Listed("maze_0000", "maze", None)]
FOLDERS = {q.id: q.source_path for q in DISK} | {"chess_0100": "chess_task/chess_0100"}  # 0100: invalid content
QUESTIONS = [{"id": q.id, "domain": q.domain, "difficulty": q.difficulty, "path": q.source_path} for q in DISK]
# seed pairs: every question's metadata, with brackets, braces, quotes and escapes inside strings and objects
PAIRS = [{"id": q.id, "domain": q.domain, "difficulty": q.difficulty, "prompt": 'Move [a] {b} "c" \\ ] } , :',
          "chess_data": {"fen": "8/8 w - -", "moves": ["Qh7#", {"x": [1, 2.5e3, None, True]}], "u": "\u00e9\u2028"}}
         for q in DISK]

DOCUMENTS: list[Any] = [
    {"name": "vmeval_dataset", "pairs": PAIRS, "questions": QUESTIONS, "total_pairs": 6},  # sorted keys, as written
    {"total_pairs": 6, "questions": QUESTIONS, "pairs": PAIRS, "name": "x"},  # any order
    {"pairs": PAIRS, "total_pairs": 6},  # the seed's format
    {"pairs": list(reversed(PAIRS[1:])) + [dict(PAIRS[0], domain="maze"), {"id": "chess_0100"}, {"id": "x_1"}, 5]},
    {"questions": [*QUESTIONS, dict(QUESTIONS[0], difficulty="hard"), {"id": "CHESS_0001"}, {"id": 5}, {}],
     "total_pairs": 7.0},
    {"questions": [dict(QUESTIONS[0], path="elsewhere", domain=["chess"]), {"id": "chess_0001", "domain": None},
                   {"id": "maze_0000", "difficulty": None, "path": "maze_task/maze_0000"}], "total_pairs": True},
    {"questions": None, "pairs": PAIRS}, {"questions": []}, {"pairs": {"id": "chess_0000"}}, {"pairs": "text"},
    {"questions": "x"}, {"questions": [1]}, {"questions": {}}, {}, [], [1, {"a": 2}], "x", 3, None,
]
RAW: list[bytes] = [
    # repeated keys: the last counts; a null "questions" gives way to "pairs", wherever they come
    b'{"questions": [], "questions": null, "pairs": [{"id": "chess_0000", "domain": "chess", "difficulty": "easy"}]}',
    b'{"pairs": [{"id": "chess_0000"}], "questions": [{"id": "a"}], "questions": null}',
    b'{"questions": [{"id": "a"}], "pairs": [{"id": "chess_0000"}], "questions": null}',
    b'{"total_pairs": 1, "total_pairs": 6, "questions": ' + json.dumps(QUESTIONS).encode() + b"}",
    b'{"questions": [{"id": "chess_0000", "id": "chess_0001"}]}',
    b'{"questions": [], "n": NaN, "m": -Infinity}\r\n\r\n',
    b"\xef\xbb\xbf{}", b"", b" \n ", b'{"questions": [1,]}', b'{"a": 1,}', b'{"a" 1}', b'{"a": 1} {}',
    b'{"questions": [\r\n{"id": "chess_0000"},\r{"id": 1}]}',
    b'{"questions": [], "x": "\xff"}',  # not UTF-8: reported over any JSON error before it
    b'{"questions": [}, "x": "caf\xc3\xa9", "y": "\xc3"}',
    b'{"questions": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}",  # nested too deeply
]


def _texts() -> list[bytes]:
    texts = [json.dumps(d, indent=indent).encode() for d in DOCUMENTS for indent in (None, 2)] + RAW
    written = json.dumps(DOCUMENTS[0], indent=2).encode()
    texts += [written[:i] for i in range(len(written))]  # cut at every byte
    rng = random.Random(20)
    for _ in range(400):  # and broken in a few places
        b = bytearray(written)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(b))
            if rng.random() < 0.5:
                b[i] = rng.choice(b'{}[],:"\\ \n\r0eE-+.\xff\xc3')
            else:
                del b[i]
        texts.append(bytes(b))
    return texts


def _problems(found: list[Problem]) -> list[tuple[str, str, str, str, str | None]]:
    return [(p.path, p.code, p.message, p.severity, p.question) for p in found]


@pytest.mark.parametrize("chunk", [65536, 1, 7, 16])
def test_streamed_manifest_reports_what_the_whole_text_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 chunk: int) -> None:
    """Keys in any order, repeated keys, nested objects and strings holding brackets and escapes,
    every cut of a written manifest and random damage: read a chunk of ``chunk`` bytes at a time
    (cutting every token somewhere), the problems are exactly those of ``json.loads``."""
    monkeypatch.setattr(jsonstream, "CHUNK", chunk)
    path = tmp_path / DATASET_MANIFEST
    texts = _texts()
    if chunk < 16:  # one byte at a time is slow: every document, and some of the rest
        texts = texts[:60] + texts[60::7]
    for text in texts:
        path.write_bytes(text)
        assert _problems(manifest_problems(tmp_path, DISK, FOLDERS)) == \
            _problems(_whole_text_problems(tmp_path, DISK, FOLDERS)), text


def test_a_cut_manifest_names_the_file_the_place_and_the_fix(tmp_path: Path) -> None:
    text = json.dumps(DOCUMENTS[0], indent=2)
    cut = text.index('"total_pairs"')  # the file ends after the comma that follows "questions"
    (tmp_path / DATASET_MANIFEST).write_text(text[:cut], encoding="utf-8")
    line, column = text.count("\n", 0, cut) + 1, cut - text.rfind("\n", 0, cut)
    assert _problems(manifest_problems(tmp_path, DISK, FOLDERS)) == [(
        str(tmp_path / DATASET_MANIFEST), "manifest_invalid",
        f"cannot read the manifest (Expecting property name enclosed in double quotes: line {line} column "
        f"{column} (char {cut})); run `vmeval-hf manifest` to rewrite it", "error", None)]


def test_entries_keep_only_the_compared_fields(tmp_path: Path) -> None:
    (tmp_path / DATASET_MANIFEST).write_text(json.dumps(DOCUMENTS[3]), encoding="utf-8")
    read = read_manifest_entries(tmp_path)
    assert read.entries is not None and read.total is None
    assert [tuple(e[:3]) + (e.path,) for e in read.entries][-3:] == [
        ("chess_0000", "maze", "easy", ABSENT), ("chess_0100", None, None, ABSENT), ("x_1", None, None, ABSENT)]
    (tmp_path / DATASET_MANIFEST).write_text(json.dumps(DOCUMENTS[5]), encoding="utf-8")
    first, second, third = read_manifest_entries(tmp_path).entries or []
    assert (first.domain, first.path) == (["chess"], "elsewhere")
    assert (second.domain, second.difficulty, second.path) == (None, ABSENT, ABSENT)
    assert third.path == "maze_task/maze_0000" and third.domain is ABSENT


def test_a_big_manifest_is_read_in_pieces(tmp_path: Path) -> None:
    """20,000 questions with their full metadata (about 20 MB of text): reading them holds a
    chunk of the text and a small tuple per question, not the text nor the parsed document."""
    n = 20_000
    meta = {"prompt": "Find the path through the maze from the green start to the red goal. " * 4,
            "maze_data": {"grid": [[0, 1, 0, 1, 1, 0, 0, 1] for _ in range(12)], "start": [0, 0], "goal": [7, 7]}}
    ids = [f"maze_{i:06d}" for i in range(n)]
    with (tmp_path / DATASET_MANIFEST).open("w", encoding="utf-8") as f:  # as write_manifest lays it out
        f.write('{\n  "pairs": [\n')
        f.write(",\n".join(json.dumps({"id": qid, "domain": "maze", "difficulty": "hard", **meta}, indent=2)
                           for qid in ids))
        f.write('\n  ],\n  "questions": [\n')
        f.write(",\n".join(json.dumps({"difficulty": "hard", "domain": "maze", "id": qid,
                                       "path": f"maze_task/{qid}"}) for qid in ids))
        f.write(f'\n  ],\n  "total_pairs": {n}\n}}\n')
    size = (tmp_path / DATASET_MANIFEST).stat().st_size
    assert size > 20 * 2**20
    tracemalloc.start()
    try:
        read = read_manifest_entries(tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert read.problems == [] and read.total == n and read.entries is not None
    assert [e.id for e in read.entries] == ids and {(e.domain, e.difficulty) for e in read.entries} == {("maze", "hard")}
    assert read.entries[-1].path == f"maze_task/{ids[-1]}"
    assert peak < size / 4, (peak, size)  # parsed whole, it took several times the text's size
    disk = [Listed(qid, "maze", "hard") for qid in ids]
    assert manifest_problems(tmp_path, disk, {q.id: q.source_path for q in disk}, read) == []


def test_folders_map_each_name_to_its_path_holding_only_the_names() -> None:
    import pickle

    from vmeval_hf.tree.model import Folders

    folders = Folders()
    name = "".join(["chess_", "0001"])  # a string of its own, not a constant the compiler shares
    folders[name] = "chess_task/chess_0001"
    folders["a_b_0002"] = "a_b_task/a_b_0002"
    folders["odd"] = "elsewhere/odd"  # not a checker's path: kept as given
    expected = {"chess_0001": "chess_task/chess_0001", "a_b_0002": "a_b_task/a_b_0002", "odd": "elsewhere/odd"}
    assert dict(folders) == expected and folders == expected and len(folders) == 3
    assert "chess_0001" in folders and "chess_0002" not in folders
    with pytest.raises(KeyError):
        folders["chess_0002"]
    assert folders.shared("".join(["chess_", "0001"])) is name and folders.shared("x") == "x"
    copy = pickle.loads(pickle.dumps(folders))
    assert copy == expected
    copy.update({"maze_0003": "maze_task/maze_0003"})
    del copy["odd"]
    assert sorted(copy.items()) == [("a_b_0002", "a_b_task/a_b_0002"), ("chess_0001", "chess_task/chess_0001"),
                                    ("maze_0003", "maze_task/maze_0003")]
    assert Listed("a_b_0002", "a_b", "easy").source_path == "a_b_task/a_b_0002"


# -- object_without / member_items: one big array of a document ------------------------------------


def test_object_without_gives_the_rest_and_what_the_walk_made_of_the_member(tmp_path: Path) -> None:
    from vmeval_hf._shared.jsonstream import JsonStream, Unstreamed, member_items, object_without

    def count(stream: JsonStream) -> int:
        if stream.skip_ws() != "[":
            raise Unstreamed("not an array")
        return sum(1 for _ in stream.items() if stream.value() is not None)

    path = tmp_path / "doc.json"
    doc = {"a": 1, "files": [{"key": str(i)} for i in range(500)], "z": {"n": [1, 2]}}
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    assert object_without(path, "files", count) == ({"a": 1, "z": {"n": [1, 2]}}, 500)
    assert list(member_items(path, "files")) == doc["files"]
    # every shape the streamed read leaves to the whole read: None, never a wrong answer
    for text in ('{"a": 1}', '{"files": [], "files": []}', '[1]', '{"files": 3}', '{"files": [1,', "",
                 '{"files": [1]} x'):
        path.write_text(text, encoding="utf-8")
        assert object_without(path, "files", count) is None, text
    assert object_without(tmp_path / "missing.json", "files", count) is None
    for text, error in (('{"a": 1}', Unstreamed), ('[1]', Unstreamed), ('{"files": 3}', Unstreamed),
                        ('{"files": [1,', ValueError)):
        path.write_text(text, encoding="utf-8")
        with pytest.raises(error):
            list(member_items(path, "files"))
