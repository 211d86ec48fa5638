"""``load_version``: a published version through ``datasets.load_dataset``, from the S3 mirror (real
``s3fs`` over HTTP to moto) or from the Hub server, on a machine without the publisher's ``data/``.

Rows are compared with the release's own Parquet shards and the question files (ids, prompts,
image bytes); the checks on downloaded bytes are exercised by altering the cache and the bucket.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.support.hub import disable_parquet_export
from tests.support.published import S3_VARS, World, publish_world
from tests.support.s3 import raw_client
from vmeval_hf import load_version
from vmeval_hf.config import Settings
from vmeval_hf.errors import ConfigError, IntegrityError


@pytest.fixture(scope="module")
def world(moto_server: str, hub_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with publish_world(tmp_path_factory.mktemp("load"), moto_server) as published:
        yield published


@pytest.fixture
def in_b(world: World, monkeypatch: pytest.MonkeyPatch, fresh_hf_cache: Path) -> World:
    """Run in the second machine's folder (no data/), with empty Hugging Face caches."""
    monkeypatch.chdir(world.b)
    disable_parquet_export()
    return world


def release_rows(world: World, version: str, domain: str | None = None) -> dict[str, dict[str, Any]]:
    """id -> {prompt, first_frame bytes, final_frame bytes} from the release's own shards."""
    rows = {}
    for shard in sorted((world.release(version) / "data").glob(f"{domain or '*'}/test-*.parquet")):
        for row in pq.read_table(shard).to_pylist():
            rows[row["id"]] = {"prompt": row["prompt"], "first_frame": row["first_frame"]["bytes"],
                               "final_frame": row["final_frame"]["bytes"]}
    return rows


def loaded_rows(ds: Any) -> dict[str, dict[str, Any]]:
    from datasets import Image

    plain = ds.cast_column("first_frame", Image(decode=False)).cast_column("final_frame", Image(decode=False))
    return {row["id"]: {"prompt": row["prompt"], "first_frame": row["first_frame"]["bytes"],
                        "final_frame": row["final_frame"]["bytes"]} for row in plain}


@pytest.mark.parametrize("source", ["s3", "hub"])
@pytest.mark.parametrize("streaming", [False, True], ids=["download", "streaming"])
def test_both_sources_give_the_release_rows(in_b: World, source: str, streaming: bool) -> None:
    ds = load_version("1.0", source=source, streaming=streaming)
    assert type(ds).__name__ == ("IterableDataset" if streaming else "Dataset")
    rows = loaded_rows(ds)
    assert rows == release_rows(in_b, "1.0")
    # ... which are the question files as 1.0 was published, byte for byte
    files = in_b.questions_10
    for qid, row in rows.items():
        folder = f"{qid.rsplit('_', 1)[0]}_task/{qid}"
        assert row["prompt"] == files[f"{folder}/prompt.txt"].decode("utf-8")
        assert row["first_frame"] == files[f"{folder}/first_frame.png"]
        assert row["final_frame"] == files[f"{folder}/final_frame.png"]
    assert sorted(rows) == ["chess_0000", "chess_0001", "maze_0000"]


@pytest.mark.parametrize("source", ["s3", "hub"])
def test_one_config_and_the_next_version(in_b: World, source: str) -> None:
    chess = load_version("1.1", source=source, config="chess")
    assert loaded_rows(chess) == release_rows(in_b, "1.1", "chess")
    assert dict(zip(chess["id"], chess["prompt"]))["chess_0000"] == "A changed prompt"
    with pytest.raises(ConfigError, match="no config 'sudoku'.*chess, maze"):
        load_version("1.1", source=source, config="sudoku")


def test_unknown_version_and_source_are_config_errors(in_b: World) -> None:
    with pytest.raises(ConfigError, match="9.9 is not in the version log"):
        load_version("9.9")
    with pytest.raises(ConfigError, match="choose 's3' or 'hub'"):
        load_version("1.0", source="ftp")


def test_s3_load_uses_the_mirror_settings_and_keeps_secrets_out_of_the_cache(in_b: World, tmp_path: Path) -> None:
    cache = tmp_path / "ds-cache"
    ds = load_version("1.0", source="s3", cache_dir=cache)
    assert len(ds) == 3
    downloads = sorted(p.name for p in (cache / "downloads").iterdir() if not p.name.endswith((".json", ".lock")))
    assert len(downloads) == 2  # the two shards of 1.0 (chess, maze), nothing else
    for path in cache.rglob("*"):
        if path.is_file():
            assert in_b.settings.aws_secret_access_key.encode() not in path.read_bytes(), path


def test_a_damaged_cached_shard_is_downloaded_again(in_b: World, tmp_path: Path) -> None:
    cache = tmp_path / "ds-cache"
    load_version("1.0", source="s3", cache_dir=cache)
    (cached,) = _cached_shards(cache, "chess")
    good = cached.read_bytes()
    cached.write_bytes(good[:-8] + b"tampered")
    ds = load_version("1.0", source="s3", cache_dir=cache)
    assert cached.read_bytes() == good  # fetched again, and checked
    assert loaded_rows(ds) == release_rows(in_b, "1.0")


def _cached_shards(cache: Path, domain: str) -> list[Path]:
    """The download-cache files of ``domain``'s shards (named by datasets' hash of the URL)."""
    out = []
    for meta in (cache / "downloads").glob("*.json"):
        if f"/data/{domain}/" in json.loads(meta.read_text(encoding="utf-8"))["url"]:
            out.append(meta.with_suffix(""))
    return out


def test_an_altered_s3_shard_is_refused(in_b: World, tmp_path: Path) -> None:
    """The bucket is altered last in this module: the shard of 1.1's maze domain is replaced."""
    key = f"{in_b.entries['1.1']['date']}/release/data/maze/test-00000-of-00001.parquet"
    client = raw_client(in_b.settings)
    good = client.get_object(Bucket=in_b.bucket, Key=key)["Body"].read()
    table = pq.read_table(io.BytesIO(good))
    other = io.BytesIO()
    pq.write_table(table.slice(0, 1), other)  # a valid Parquet file, one row short
    client.delete_object(Bucket=in_b.bucket, Key=key)
    client.put_object(Bucket=in_b.bucket, Key=key, Body=other.getvalue())
    try:
        with pytest.raises(IntegrityError, match=r"maze/test-00000-of-00001\.parquet.*not the release's") as err:
            load_version("1.1", source="s3", cache_dir=tmp_path / "ds-cache")
        assert err.value.key.startswith(f"s3://{in_b.bucket}/")
    finally:
        client.delete_object(Bucket=in_b.bucket, Key=key)
        client.put_object(Bucket=in_b.bucket, Key=key, Body=good)


def test_an_altered_s3_release_manifest_is_refused_before_any_shard_is_read(in_b: World, tmp_path: Path) -> None:
    """1.1's manifest on S3 with one source entry edited (put back after): the load names the
    object and says what to do; nothing reaches the datasets cache."""
    key = f"{in_b.entries['1.1']['date']}/release/vmeval_release.json"
    client = raw_client(in_b.settings)
    good = client.get_object(Bucket=in_b.bucket, Key=key)["Body"].read()
    doc = json.loads(good)
    doc["sources"][-1]["size"] += 1
    client.put_object(Bucket=in_b.bucket, Key=key, Body=json.dumps(doc, indent=2).encode())
    try:
        with pytest.raises(IntegrityError) as err:
            load_version("1.1", source="s3", cache_dir=tmp_path / "ds-cache")
        assert str(err.value).startswith(f"s3://{in_b.bucket}/{key}: content_sha256 does not match its source list")
        assert "re-publish that version" in str(err.value)
        assert not (tmp_path / "ds-cache").exists()
    finally:
        client.put_object(Bucket=in_b.bucket, Key=key, Body=good)


def test_hub_without_s3_settings_and_without_a_token(in_b: World, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*S3_VARS, "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_env()
    assert settings.aws_access_key_id is None and settings.hf_token is None
    ds = load_version("1.1", source="hub", settings=settings)
    assert loaded_rows(ds) == release_rows(in_b, "1.1")
    with pytest.raises(ConfigError, match="not mirrored to S3"):  # the Hub knows no S3 prefix
        load_version("1.1", source="s3", settings=settings)


def test_a_hub_endpoint_the_datasets_client_does_not_use_is_refused(in_b: World) -> None:
    other = in_b.settings.with_(hf_endpoint="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="HF_ENDPOINT"):
        load_version("1.0", source="hub", settings=other)
