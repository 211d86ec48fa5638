"""``vmeval_dataset.json``: written deterministically from the folders, and checked against them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.trees import make_question, make_tree
from vmeval_hf import ValidationError, check_manifest, validate_tree, write_manifest

MANIFEST = "vmeval_dataset.json"


def manifest_path(data: Path) -> Path:
    return data / "questions" / MANIFEST


def load(data: Path) -> dict:
    return json.loads(manifest_path(data).read_text(encoding="utf-8"))


def save(data: Path, doc: dict) -> None:
    manifest_path(data).write_text(json.dumps(doc), encoding="utf-8")


def found(problems: list) -> list[tuple[str, str]]:
    return [(p.path, p.code) for p in problems]


# --- writing ------------------------------------------------------------------------------------


def test_write_is_deterministic_and_byte_identical(data_tree: Path) -> None:
    first = manifest_path(data_tree).read_bytes()
    result = write_manifest(data_tree)
    assert manifest_path(data_tree).read_bytes() == first
    assert result == {"path": str(manifest_path(data_tree)), "total_questions": 5,
                      "domains": {"chess": 3, "maze": 2}}
    # a second tree built the same way elsewhere gives the same bytes: no timestamps, no absolute paths
    other = make_tree(data_tree.parent / "copy", {"chess": 3, "maze": 2})
    assert manifest_path(other).read_bytes() == first


def test_written_document_keeps_seed_fields_and_adds_new_ones(data_tree: Path) -> None:
    doc = load(data_tree)
    assert doc["name"] == "vmeval_dataset"
    assert doc["description"] == "VMEvalKit video reasoning evaluation dataset (5 task pairs)"
    assert doc["total_pairs"] == 5
    assert [p["id"] for p in doc["pairs"]] == ["chess_0000", "chess_0001", "chess_0002",
                                               "maze_0000", "maze_0001"]
    assert doc["pairs"][0]["chess_data"] == {"index": 0}  # the full question_metadata.json
    assert doc["statistics"] == {"total_questions": 5, "domains": {"chess": 3, "maze": 2},
                                 "difficulties": {"easy": 5}}
    assert doc["questions"][3] == {"id": "maze_0000", "domain": "maze", "difficulty": "easy",
                                   "path": "maze_task/maze_0000"}
    assert "created_at" not in doc  # no wall-clock field unless one is given
    assert "version" not in doc


def test_optional_fields_are_written_when_given_and_kept_on_rewrite(data_tree: Path) -> None:
    write_manifest(data_tree, created_at="2025-01-15T10:30:00Z", version="1.0",
                   generation_info={"random_seed": 42})
    doc = load(data_tree)
    assert (doc["created_at"], doc["version"], doc["generation_info"]) == (
        "2025-01-15T10:30:00Z", "1.0", {"random_seed": 42})
    before = manifest_path(data_tree).read_bytes()
    write_manifest(data_tree)
    assert manifest_path(data_tree).read_bytes() == before
    write_manifest(data_tree, version="1.1")
    assert load(data_tree)["version"] == "1.1"


def test_minimal_layout_pairs_are_built_from_the_folders(tmp_path: Path) -> None:
    data = make_tree(tmp_path / "data", {"raven": 1}, classic=False, final=False)
    doc = load(data)
    assert doc["pairs"] == [{"id": "raven_0000", "domain": "raven", "prompt": "Solve raven puzzle number 0.",
                             "first_image_path": "raven_task/raven_0000/first_frame.png",
                             "final_image_path": None}]
    assert doc["statistics"]["difficulties"] == {"unlabelled": 1}
    assert check_manifest(data) == []


def test_write_refuses_a_tree_with_errors_and_leaves_the_file(data_tree: Path) -> None:
    before = manifest_path(data_tree).read_bytes()
    folder = data_tree / "questions" / "chess_task" / "chess_0000"
    (folder / "prompt.txt").write_text("", encoding="utf-8")
    make_question(data_tree / "questions", "chess", 7)
    with pytest.raises(ValidationError) as info:
        write_manifest(data_tree)
    assert info.value.path == str(folder / "prompt.txt")
    assert manifest_path(data_tree).read_bytes() == before
    assert not list(manifest_path(data_tree).parent.glob(".*.tmp"))


# --- checking -------------------------------------------------------------------------------------


def test_in_sync(data_tree: Path) -> None:
    assert check_manifest(data_tree) == []


def test_listed_but_missing(data_tree: Path) -> None:
    shutil.rmtree(data_tree / "questions" / "maze_task" / "maze_0001")
    problems = check_manifest(data_tree)
    assert found(problems) == [(str(manifest_path(data_tree)), "manifest_lists_missing")]
    assert "maze_0001" in problems[0].message and problems[0].severity == "error"


def test_present_but_unlisted(data_tree: Path) -> None:
    make_question(data_tree / "questions", "maze", 2)
    problems = check_manifest(data_tree)
    assert found(problems) == [(str(manifest_path(data_tree)), "manifest_missing_question")]
    assert "maze_task/maze_0002" in problems[0].message


def test_listed_question_with_invalid_content_is_not_reported_missing(data_tree: Path) -> None:
    """A folder that exists but fails validation is reported once, by the folder check."""
    (data_tree / "questions" / "maze_task" / "maze_0001" / "prompt.txt").unlink()
    report = validate_tree(data_tree)
    assert [p.code for p in report.errors] == ["missing_file"]


def test_differing_difficulty(data_tree: Path) -> None:
    meta_path = data_tree / "questions" / "chess_task" / "chess_0001" / "question_metadata.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["difficulty"] = "hard"
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    problems = check_manifest(data_tree)
    assert found(problems) == [(str(manifest_path(data_tree)), "manifest_field_differs")]
    assert "chess_0001: difficulty is 'easy' in the manifest but 'hard'" in problems[0].message


@pytest.mark.parametrize("dup_id", ["chess_0000", "CHESS_0000"])
def test_duplicate_ids_in_the_manifest(data_tree: Path, dup_id: str) -> None:
    doc = load(data_tree)
    doc["questions"].append(dict(doc["questions"][0], id=dup_id))
    doc["total_pairs"] = len(doc["questions"])
    save(data_tree, doc)
    problems = check_manifest(data_tree)
    assert (str(manifest_path(data_tree)), "manifest_duplicate_id") in found(problems)
    assert any(dup_id in p.message for p in problems if p.code == "manifest_duplicate_id")


def test_total_pairs_disagreeing_with_the_list(data_tree: Path) -> None:
    doc = load(data_tree)
    doc["total_pairs"] = 99
    save(data_tree, doc)
    assert found(check_manifest(data_tree)) == [(str(manifest_path(data_tree)), "manifest_count_differs")]


@pytest.mark.parametrize("content", ["{", "[]", '{"questions": 3}', '{"questions": [1]}'])
def test_unreadable_manifest(data_tree: Path, content: str) -> None:
    manifest_path(data_tree).write_text(content, encoding="utf-8")
    assert found(check_manifest(data_tree)) == [(str(manifest_path(data_tree)), "manifest_invalid")]


def test_seed_format_manifest_with_pairs_only(data_tree: Path) -> None:
    """The original tools wrote only ``pairs`` (shuffled, full metadata): still checked."""
    doc = load(data_tree)
    seed = {"name": doc["name"], "description": doc["description"], "created_at": "2025-10-14T09:00:00Z",
            "total_pairs": 5, "pairs": list(reversed(doc["pairs"]))}
    save(data_tree, seed)
    assert check_manifest(data_tree) == []
    seed["pairs"] = seed["pairs"][1:]
    seed["total_pairs"] = 4
    save(data_tree, seed)
    assert [p.code for p in check_manifest(data_tree)] == ["manifest_missing_question"]
    write_manifest(data_tree)
    assert load(data_tree)["created_at"] == "2025-10-14T09:00:00Z"  # kept from the old file
    assert check_manifest(data_tree) == []


def test_missing_manifest_is_a_warning_for_validate_and_an_error_for_check(tmp_path: Path) -> None:
    data = make_tree(tmp_path / "data", {"chess": 1}, manifest=False)
    report = validate_tree(data)
    assert report.ok
    assert [(p.path, p.code, p.severity) for p in report.problems] == [
        (str(manifest_path(data)), "manifest_missing", "warning")]
    assert [(p.code, p.severity) for p in check_manifest(data)] == [("manifest_missing", "error")]


def test_validate_reports_manifest_drift_as_errors(data_tree: Path) -> None:
    make_question(data_tree / "questions", "chess", 3)
    report = validate_tree(data_tree)
    assert [(p.path, p.code) for p in report.errors] == [
        (str(manifest_path(data_tree)), "manifest_missing_question")]


# --- the release manifest's canonical text, fast --------------------------------------------------


def test_manifest_text_is_canonical_json_byte_for_byte(tmp_path: Path) -> None:
    """release_sha256 hashes manifest_text: it must be exactly canonical_json, for a written
    manifest (the bytes on disk) and for odd ones (non-ASCII and escaped paths, no sources, a
    foreign entry, which goes through json whole)."""
    from tests.support.trees import make_tree
    from vmeval_hf._shared.fs import canonical_json
    from vmeval_hf.release.build import build_release
    from vmeval_hf.release.release_manifest import RELEASE_MANIFEST, manifest_text

    built = build_release(make_tree(tmp_path / "data", {"chess": 3, "maze": 2}), tmp_path / "r", version="1.0")
    on_disk = (built.out / RELEASE_MANIFEST).read_text(encoding="utf-8")
    manifest = json.loads(on_disk)
    assert manifest_text(manifest) == canonical_json(manifest) == on_disk
    odd = [{"path": 'é/"q"\\\n\u2028\x00', "sha256": "ab", "size": 0}, {"path": "z", "sha256": "", "size": 10**20}]
    for sources in ([], odd, [*odd, {"path": "x", "sha256": "y", "size": 1, "extra": True}],
                    [{"path": "x", "sha256": "y", "size": True}], [{"path": "x", "sha256": "y", "size": 1.0}]):
        m = {**manifest, "sources": sources}
        assert manifest_text(m) == canonical_json(m)
    assert manifest_text({"no": "sources"}) == canonical_json({"no": "sources"})
