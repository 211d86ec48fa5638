"""The version log: seed compatibility, conflicts, corrupt files, concurrent writers, the script."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vmeval_hf._shared.meta import __version__
from vmeval_hf.errors import ConfigError, VersionConflictError, VersionLogError
from vmeval_hf.versions import (
    VersionLog,
    get_latest,
    load_log,
    log_version,
    next_version,
    print_summary,
    save_log,
)

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "version_tracker.py"


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "data_logging" / "version_log.json"


def _hub_fields(version: str) -> dict[str, object]:
    return {
        "hf_uri": f"hf://datasets/org/vmevalkit-questions@{version}",
        "hf_repo": "org/vmevalkit-questions",
        "hf_revision": version,
        "hf_commit": "a" * 40,
        "content_sha256": "b" * 64,
    }


# --- append / get / latest / next_version ---------------------------------------------


def test_empty_log(log_path: Path) -> None:
    log = VersionLog(log_path)
    assert log.load() == {"schema": 1, "versions": []}
    assert log.entries() == []
    assert log.latest() is None
    assert log.get("1.0") is None
    assert log.next_version() == "1.0"
    assert not log_path.exists()  # reading never creates the file


def test_append_get_latest(log_path: Path) -> None:
    log = VersionLog(log_path)
    first = log.append({"version": "1.0", "s3_uri": "s3://vmevalkit/20250115/data",
                        "size_mb": 180.0, "files": 1300, "questions": 75, "domains": {"chess": 15},
                        **_hub_fields("1.0")})
    log.append({"version": "1.1", "s3_uri": "s3://vmevalkit/20250201/data"})

    assert first["tool"] == f"vmeval-hf {__version__}"
    assert re.fullmatch(r"\d{8}", first["date"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["timestamp"])
    assert log.get("1.0") == first
    assert log.get("v1.0") == first
    assert log.latest()["version"] == "1.1"
    assert log.next_version() == "1.2"

    doc = json.loads(log_path.read_text())
    assert doc["schema"] == 1
    assert [e["version"] for e in doc["versions"]] == ["1.0", "1.1"]
    assert doc["versions"][0]["domains"] == {"chess": 15}
    # seed readers' fields are always present
    for entry in doc["versions"]:
        assert {"version", "date", "s3_uri", "size_mb", "files", "timestamp"} <= entry.keys()
    assert not list(log_path.parent.glob("*.tmp"))


def test_next_version_compares_numerically(log_path: Path) -> None:
    log = VersionLog(log_path)
    for v in ("1.2", "1.9", "1.10", "0.99", "beta-1", "1.3.4"):
        log.append({"version": v, "s3_uri": None})
    assert log.next_version() == "1.11"
    assert next_version(log_path) == "1.11"
    assert log.latest()["version"] == "1.3.4"  # latest is the last appended, not the highest


def test_next_version_ignores_non_numeric_labels(log_path: Path) -> None:
    VersionLog(log_path).append({"version": "nightly", "s3_uri": None})
    assert next_version(log_path) == "1.0"


def test_duplicate_refused_and_replace_in_place(log_path: Path) -> None:
    log = VersionLog(log_path)
    for v in ("1.0", "1.1", "1.2"):
        log.append({"version": v, "s3_uri": f"s3://b/{v}"})
    before = log_path.read_bytes()

    with pytest.raises(VersionConflictError) as exc_info:
        log.append({"version": "1.1", "s3_uri": "s3://b/other"})
    assert exc_info.value.version == "1.1"
    assert "1.3" in str(exc_info.value)  # names the next free version
    assert log_path.read_bytes() == before

    log.append({"version": "1.1", "s3_uri": "s3://b/other", "files": 9}, replace=True)
    assert [e["version"] for e in log.entries()] == ["1.0", "1.1", "1.2"]
    assert log.get("1.1")["s3_uri"] == "s3://b/other"
    assert log.get("1.1")["files"] == 9


@pytest.mark.parametrize("label", ["", ".hidden", "1.0/../x", "v 1", "a..b", "x" * 200, None, 1.0])
def test_bad_labels_refused(log_path: Path, label: object) -> None:
    with pytest.raises(ConfigError):
        VersionLog(log_path).append({"version": label, "s3_uri": None})
    assert not log_path.exists()


@pytest.mark.parametrize(("label", "stored"), [("1.0", "1.0"), ("1.10", "1.10"), ("2.0.1", "2.0.1"), ("v1.0", "1.0"),
                                             ("2025-01-15_rc1", "2025-01-15_rc1"), ("nightly", "nightly")])
def test_good_labels_accepted(log_path: Path, label: str, stored: str) -> None:
    """Stored in the canonical spelling (labels.canonical_label): ``v1.0`` is version ``1.0``."""
    assert VersionLog(log_path).append({"version": label, "s3_uri": None})["version"] == stored


def test_data_dir_resolves_log(tmp_path: Path) -> None:
    log_version("1.0", "s3://b/p", data_dir=tmp_path / "data")
    assert (tmp_path / "data" / "data_logging" / "version_log.json").is_file()
    assert get_latest(data_dir=tmp_path / "data")["version"] == "1.0"


def test_default_path_is_relative_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    log_version("1.0", "s3://b/p")
    assert (tmp_path / "data" / "data_logging" / "version_log.json").is_file()
    assert get_latest()["version"] == "1.0"


# --- seed compatibility ---------------------------------------------------------------


SEED_LOG = """{
  "versions": [
    {
      "version": "1.0",
      "date": "20251014",
      "s3_uri": "s3://vmevalkit/202510141200/data",
      "size_mb": 12.5,
      "files": 40,
      "timestamp": "2025-10-14T12:00:00.123456"
    }
  ]
}
"""


def test_seed_format_log_read_and_extended(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True)
    log_path.write_text(SEED_LOG)

    latest = get_latest(log_path)
    assert latest["s3_uri"] == "s3://vmevalkit/202510141200/data"
    assert "schema" not in load_log(log_path)
    assert next_version(log_path) == "1.1"

    log_version("1.1", "s3://vmevalkit/20251101/data", {"size_mb": 13.0, "files": 41}, path=log_path)
    doc = json.loads(log_path.read_text())
    assert doc["schema"] == 1
    assert doc["versions"][0] == json.loads(SEED_LOG)["versions"][0]  # old entry untouched
    assert doc["versions"][1]["size_mb"] == 13.0


def test_seed_empty_log(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True)
    log_path.write_text('{"versions": []}')
    assert load_log(log_path) == {"versions": []}
    assert get_latest(log_path) is None
    assert next_version(log_path) == "1.0"


def test_log_version_keeps_extra_stats_and_fields(log_path: Path) -> None:
    entry = log_version(
        "1.0", "s3://vmevalkit/20250115/data",
        {"size_mb": 180.0, "files": 1300, "change": "Data sync", "domains": {"chess": 15}},
        path=log_path, questions=75, date="20250115", timestamp="2025-01-15T10:30:00Z",
        **_hub_fields("1.0"),
    )
    stored = get_latest(log_path)
    assert stored == entry
    assert stored["change"] == "Data sync"
    assert stored["domains"] == {"chess": 15}
    assert stored["questions"] == 75
    assert stored["hf_commit"] == "a" * 40
    assert stored["date"] == "20250115"
    assert stored["timestamp"] == "2025-01-15T10:30:00Z"
    assert stored["size_mb"] == 180.0 and stored["files"] == 1300


def test_log_version_defaults(log_path: Path) -> None:
    entry = log_version("1.0", "s3://b/p", path=log_path)
    assert entry["size_mb"] == 0 and entry["files"] == 0
    assert entry["tool"] == f"vmeval-hf {__version__}"


def test_save_log_round_trip_and_shape_check(log_path: Path) -> None:
    save_log({"versions": [{"version": "1.0", "s3_uri": "s3://b/p", "date": "20250101",
                            "size_mb": 1, "files": 2, "timestamp": "t"}]}, log_path)
    assert load_log(log_path)["schema"] == 1
    before = log_path.read_bytes()
    with pytest.raises(VersionLogError):
        save_log({"versions": [{"version": "1.0"}, {"version": "1.0"}]}, log_path)
    with pytest.raises(VersionLogError):
        save_log({"versions": {}}, log_path)
    assert log_path.read_bytes() == before


# --- corrupt logs ---------------------------------------------------------------------


def _assert_untouched_after_writes(log_path: Path) -> None:
    before = log_path.read_bytes()
    with pytest.raises(VersionLogError):
        log_version("9.0", "s3://b/p", path=log_path)
    with pytest.raises(VersionLogError):
        VersionLog(log_path).append({"version": "9.1", "s3_uri": None}, replace=True)
    with pytest.raises(VersionLogError):
        save_log({"versions": []}, log_path)
    assert log_path.read_bytes() == before
    assert sorted(p.name for p in log_path.parent.iterdir()) == sorted(
        [log_path.name, log_path.name + ".lock"]
    )


def test_invalid_json_names_file_and_line(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True)
    log_path.write_text('{\n  "versions": [\n    {"version": "1.0",}\n  ]\n}\n')

    with pytest.raises(VersionLogError) as exc_info:
        load_log(log_path)
    err = exc_info.value
    assert err.path == log_path and err.line == 3
    assert f"{log_path}:3" in str(err)
    assert "never overwrites" in str(err) and "fix or restore" in str(err)
    _assert_untouched_after_writes(log_path)


CORRUPT_SHAPES = {
    "not an object": ("[1, 2]\n", 1),
    "versions not a list": ('{\n  "schema": 1,\n  "versions": {"version": "1.0"}\n}\n', 3),
    "no versions": ('{"schema": 1}\n', 1),
    "entry without version": (
        '{\n  "versions": [\n    {"version": "1.0"},\n    {\n      "date": "20250101"\n    }\n  ]\n}\n', 4),
    "entry not an object": ('{"versions": [\n  {"version": "1.0"},\n  "1.1"\n]}\n', 3),
    "duplicate versions": (
        '{"versions": [\n  {"version": "1.0"},\n  {"version": "1.1"},\n  {"version": "1.0"}\n]}\n', 4),
    "newer schema": ('{"schema": 99, "versions": []}\n', 1),
    "an address that is a number": ('{"versions": [\n  {"version": "1.0"},\n  {"version": "1.1", "s3_uri": 5}\n]}\n', 3),
    "a commit that is a list": ('{"versions": [\n  {"version": "1.0", "hf_commit": ["abc"]}\n]}\n', 2),
    "a count that is text": ('{"versions": [\n  {"version": "1.0", "questions": "12"}\n]}\n', 2),
    "a count that is true": ('{"versions": [\n  {"version": "1.0", "files": true}\n]}\n', 2),
    "domains that are a list": ('{"versions": [\n  {"version": "1.0", "domains": ["chess"]}\n]}\n', 2),
}


@pytest.mark.parametrize("case", sorted(CORRUPT_SHAPES))
def test_wrong_shape_names_file_and_line(log_path: Path, case: str) -> None:
    text, line = CORRUPT_SHAPES[case]
    log_path.parent.mkdir(parents=True)
    log_path.write_text(text)

    with pytest.raises(VersionLogError) as exc_info:
        VersionLog(log_path).entries()
    assert exc_info.value.line == line, str(exc_info.value)
    assert f"{log_path}:{line}:" in str(exc_info.value)
    assert "never overwrites" in str(exc_info.value)
    if case.startswith(("an address", "a commit", "a count", "domains")):  # before: a raw TypeError in verify
        assert "must be" in str(exc_info.value) and "versions[" in str(exc_info.value)
    _assert_untouched_after_writes(log_path)


def test_entries_of_the_seed_and_of_every_writer_keep_their_types(log_path: Path) -> None:
    """The seed's s3_sync entry (six fields), one with nulls where a side was not published, and a
    float size: all read; the field types are checked only where a field holds a value."""
    save_log({"versions": [
        {"version": "0.9", "date": "20250101", "s3_uri": "s3://b/20250101/data", "size_mb": 12.5, "files": 40,
         "timestamp": "2025-01-01T00:00:00"},
        {"version": "1.0", "date": "20250102", "s3_uri": None, "hf_uri": "hf://datasets/o/r@1.0", "hf_commit": "a" * 40,
         "size_mb": 3, "files": 12, "questions": 10, "domains": {"chess": 10}, "content_sha256": "b" * 64,
         "release_sha256": None, "message": None}]}, log_path)
    assert [e["version"] for e in VersionLog(log_path).entries()] == ["0.9", "1.0"]


# --- concurrent writers ---------------------------------------------------------------

WRITER = """
import sys
from vmeval_hf.versions import log_version
path, worker = sys.argv[1], sys.argv[2]
for i in range(25):
    log_version(f"w{worker}-{i}", f"s3://b/{worker}/{i}", {"files": i}, path=path)
"""


def test_concurrent_appends_lose_nothing(log_path: Path) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(log_path), str(w)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for w in range(8)
    ]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()

    versions = [e["version"] for e in VersionLog(log_path).entries()]
    assert len(versions) == 200
    assert set(versions) == {f"w{w}-{i}" for w in range(8) for i in range(25)}
    # each writer's own entries stay in order
    for w in range(8):
        mine = [v for v in versions if v.startswith(f"w{w}-")]
        assert mine == [f"w{w}-{i}" for i in range(25)]


# --- summary and the script -----------------------------------------------------------


def test_print_summary(log_path: Path) -> None:
    out = io.StringIO()
    print_summary(log_path, file=out)
    assert out.getvalue() == "No versions logged yet.\n"

    log_version("1.0", "s3://vmevalkit/20250115/data", {"size_mb": 180.0, "files": 1300},
                path=log_path, date="20250115", questions=75, **_hub_fields("1.0"))
    log_version("1.1", "s3://vmevalkit/20250201/data", {"size_mb": 2, "files": 3},
                path=log_path, date="20250201")
    out = io.StringIO()
    print_summary(log_path, file=out)
    assert out.getvalue() == (
        "v1.0 (20250115) → s3://vmevalkit/20250115/data | hf://datasets/org/vmevalkit-questions@1.0\n"
        "  180.0MB, 1300 files, 75 questions\n"
        "v1.1 (20250201) → s3://vmevalkit/20250201/data\n"
        "  2.0MB, 3 files\n"
    )
    assert VersionLog(log_path).summary_text() == out.getvalue().rstrip("\n")


def test_print_summary_defaults_to_stdout(log_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    print_summary(log_path)
    assert capsys.readouterr().out == "No versions logged yet.\n"


def _script(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=30)


def test_script_summary_and_latest(log_path: Path, tmp_path: Path) -> None:
    assert _script("latest", "--path", str(log_path)).stdout == ""
    assert _script("summary", "--path", str(log_path)).stdout == "No versions logged yet.\n"

    log_version("1.0", "s3://vmevalkit/20250115/data", {"size_mb": 1.0, "files": 2},
                path=log_path, date="20250115")
    log_version("1.1", "s3://vmevalkit/20250201/data", path=log_path, date="20250201")

    latest = _script("latest", "--path", str(log_path))
    assert latest.returncode == 0, latest.stderr
    assert latest.stdout == "Latest: v1.1 → s3://vmevalkit/20250201/data\n"

    summary = _script("summary", "--path", str(log_path))
    assert summary.stdout == VersionLog(log_path).summary_text() + "\n"
    assert _script("--path", str(log_path)).stdout == summary.stdout  # no argument: summary
    assert _script("whatever", "--path", str(log_path)).stdout == summary.stdout

    as_json = _script("latest", "--json", "--path", str(log_path))
    assert json.loads(as_json.stdout)["version"] == "1.1"
    assert json.loads(_script("summary", "--json", "--path", str(log_path)).stdout) == load_log(log_path)

    # default path: data/data_logging/version_log.json under the working directory
    default = _script("latest", cwd=tmp_path)
    assert default.stdout == "Latest: v1.1 → s3://vmevalkit/20250201/data\n"


def test_script_reports_corrupt_log(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True)
    log_path.write_text("{oops")
    result = _script("summary", "--path", str(log_path))
    assert result.returncode == 1
    assert result.stderr.startswith("ERROR: ")
    assert f"{log_path}:1" in result.stderr
