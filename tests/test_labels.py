"""Version labels: one rule (``vmeval_hf._shared.labels``) says which spellings name one version,
and the log, the lookups, the build, publish and the CLI all follow it: ``v1.0`` is ``1.0``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.trees import change_tree, make_tree
from vmeval_hf._shared.labels import (
    canonical_label,
    next_after,
    numeric_key,
    ordered_after,
    release_line,
    same_label,
    validate_label,
)
from vmeval_hf.cli import cli
from vmeval_hf.config import Settings
from vmeval_hf.errors import ConfigError, VersionConflictError, VersionLogError
from vmeval_hf.versions import VersionLog


@pytest.mark.parametrize(("label", "canonical"), [("1.0", "1.0"), ("v1.0", "1.0"), ("V2.1.3", "2.1.3"),
                                                  ("vnext", "vnext"), ("v", "v"), ("nightly", "nightly"),
                                                  ("exp-1.0", "exp-1.0")])
def test_one_spelling_per_version(label: str, canonical: str) -> None:
    assert canonical_label(label) == canonical == validate_label(label)
    assert same_label(label, canonical) and same_label(canonical, label)


def test_same_label_and_the_order_follow_the_canonical_spelling() -> None:
    assert same_label("v1.0", "V1.0") and not same_label("1.0", "1.00") and not same_label("1.0", None)
    assert numeric_key("v1.10") == numeric_key("1.10") == (1, 10, 0)
    assert next_after(["v1.0", "1.1", "nightly"]) == "1.2"
    assert release_line("exp-2.1") == ("exp-", (2, 1, 0)) and release_line("nightly") is None
    assert ordered_after("1.10", "v1.9") and not ordered_after("1.9", "1.10") and not ordered_after("1.0", "1.0")
    assert ordered_after("exp-1.1", "exp-1.0") and not ordered_after("exp-1.1", "1.0")
    assert not ordered_after("nightly", "1.0") and not ordered_after("1.0", "nightly")


def test_the_log_stores_finds_and_replaces_by_the_one_rule(tmp_path: Path) -> None:
    log = VersionLog(data_dir=tmp_path)
    log.append({"version": "1.0", "s3_uri": None, "files": 1})
    with pytest.raises(VersionConflictError, match="1.0 is already in the version log"):
        log.append({"version": "v1.0", "s3_uri": None})
    log.append({"version": "v1.0", "s3_uri": None, "files": 2}, replace=True)
    assert [(e["version"], e["files"]) for e in log.entries()] == [("1.0", 2)]  # replaced, not appended
    assert log.get("V1.0") == log.get("1.0") == log.entries()[0]


def test_a_log_holding_two_spellings_of_one_version_is_refused_by_line(tmp_path: Path) -> None:
    path = tmp_path / "data_logging" / "version_log.json"
    path.parent.mkdir()
    path.write_text('{"versions": [\n {"version": "v1.0"},\n {"version": "1.0"}\n]}\n', encoding="utf-8")
    with pytest.raises(VersionLogError, match=r"version_log\.json:3: version '1\.0' appears twice"):
        VersionLog(data_dir=tmp_path).entries()


def test_build_names_the_release_by_the_canonical_label(tmp_path: Path) -> None:
    data = make_tree(tmp_path / "data", {"chess": 1})
    result = CliRunner().invoke(cli, ["build", "--data-dir", str(data), "--version", "v1.0", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["version"] == "1.0"
    manifest = json.loads((data / "releases" / "1.0" / "vmeval_release.json").read_text(encoding="utf-8"))
    assert manifest["version"] == "1.0" and not (data / "releases" / "v1.0").exists()


def test_force_with_a_v_label_replaces_the_version_instead_of_adding_one(tmp_path: Path, hub_repo: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``publish --force --version v1.0`` of a logged 1.0 (before: a second log entry "v1.0", a
    second tag "v1.0" and a releases/v1.0 folder)."""
    from vmeval_hf.hub import list_tags

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VMEVAL_HF_REPO", hub_repo)
    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    args = ["publish", "--data-dir", str(data), "--log", "--no-s3", "--date", "20250115"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.stderr
    change_tree(data)
    forced = CliRunner().invoke(cli, [*args, "--force", "--version", "v1.0", "--json"])
    assert forced.exit_code == 0, forced.stderr
    entries = VersionLog(data_dir=data).entries()
    assert [e["version"] for e in entries] == ["1.0"] and entries[0]["questions"] == 4
    tags = list_tags(Settings.from_env(), hub_repo)
    assert tags == {"1.0": entries[0]["hf_commit"]}
    assert sorted(p.name for p in (data / "releases").iterdir()) == ["1.0"]
    assert json.loads(forced.stdout)["version"] == "1.0"


def test_lookups_of_every_side_follow_the_rule(tmp_path: Path) -> None:
    from vmeval_hf.versions.lookup import list_versions

    VersionLog(data_dir=tmp_path).append({"version": "1.0", "s3_uri": None})
    listing = list_versions(settings=Settings(), data_dir=tmp_path, source="local")
    assert listing.get("v1.0") is not None and listing.get("v1.0") == listing.get("1.0")
    assert listing.get("1.00") is None
    with pytest.raises(ConfigError):
        validate_label("../1.0")
