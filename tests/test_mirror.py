"""The S3 mirror, both sides (`mirror`: write, `mirror_read`: verify and pull) and its layout
(`mirror_layout`: date prefixes, the local scan), against a real S3 API over HTTP (moto on
127.0.0.1), with faults injected by a proxy."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.support.pngs import png_bytes
from tests.support.s3 import TEST_SECRET_KEY, keys_in, raw_client
from vmeval_hf._shared.fs import canonical_json, sha256_file
from vmeval_hf.config import Settings
from vmeval_hf.errors import (
    ConfigError,
    IntegrityError,
    S3AuthError,
    S3BucketNotFoundError,
    S3ConflictError,
    S3Error,
    S3UnreachableError,
    VmevalError,
)
from vmeval_hf.release.release_manifest import content_sha256, load_release
from vmeval_hf.s3.client import make_client
from vmeval_hf.s3.layout import build_manifest_entries, parse_date
from vmeval_hf.s3.mirror import mirror_version, read_manifest, read_release_manifest, sync_to_s3
from vmeval_hf.s3.read import pull_s3, verify_s3

REPO = Path(__file__).resolve().parents[1]
DAY = "20250115"


def make_tree(root: Path, questions: int = 3) -> Path:
    """A small data/ tree: question folders with real PNGs, outputs, evaluations, and things to skip."""
    data = root / "data"
    for i in range(questions):
        domain = ("chess", "maze")[i % 2]
        q = data / "questions" / f"{domain}_task" / f"{domain}_{i:04d}"
        q.mkdir(parents=True)
        (q / "first_frame.png").write_bytes(png_bytes(i, (24, 24)))
        (q / "final_frame.png").write_bytes(png_bytes(i + 100, (24, 24)))
        (q / "prompt.txt").write_text(f"Solve puzzle {i}.\n", encoding="utf-8")
        (q / "question_metadata.json").write_text(json.dumps({"id": f"{domain}_{i:04d}", "domain": domain}))
    (data / "questions" / "vmeval_dataset.json").write_text('{"questions": []}\n')
    run = data / "outputs" / "pilot" / "model-a" / "chess_task" / "chess_0000"
    run.mkdir(parents=True)
    (run / "metadata.json").write_text('{"ok": true}\n')
    ev = data / "evaluations" / "pilot" / "model-a"
    ev.mkdir(parents=True)
    (ev / "human-eval.json").write_text('{"score": 1}\n')
    # never mirrored: the version log, hidden files, caches
    (data / "data_logging").mkdir()
    (data / "data_logging" / "version_log.json").write_text('{"schema": 1, "versions": []}\n')
    (data / "questions" / ".DS_Store").write_bytes(b"junk")
    (data / "questions" / "__pycache__").mkdir()
    (data / "questions" / "__pycache__" / "x.pyc").write_bytes(b"junk")
    return data


def make_release(root: Path, data: Path, version: str = "1.0") -> Path:
    """A minimal release folder with a valid vmeval_release.json."""
    rel = root / "release"
    (rel / "data" / "chess").mkdir(parents=True)
    shard = rel / "data" / "chess" / "test-00000-of-00001.parquet"
    shard.write_bytes(b"PAR1" + os.urandom(2000) + b"PAR1")
    (rel / "README.md").write_text("---\nconfigs: []\n---\n# card\n")
    qroot = data / "questions"
    sources = [{"path": p.relative_to(qroot).as_posix(), "size": p.stat().st_size, "sha256": sha256_file(p)}
               for p in sorted(qroot.glob("*_task/*/*")) if p.is_file()]
    files = [{"path": p, "size": (rel / p).stat().st_size, "sha256": sha256_file(rel / p)}
             for p in ("README.md", "data/chess/test-00000-of-00001.parquet")]
    manifest = {"schema": 1, "version": version, "questions": 3, "domains": {"chess": 2, "maze": 1},
                "sources": sources, "shards": [dict(files[1], rows=2)], "files": files,
                "content_sha256": content_sha256(sources)}
    (rel / "vmeval_release.json").write_text(canonical_json(manifest))
    return rel


def fast_client(settings: Settings, **kw: Any) -> Any:
    kw.setdefault("max_attempts", 3)
    kw.setdefault("connect_timeout", 2)
    kw.setdefault("read_timeout", 2)
    return make_client(settings, 8, **kw)


# -- dates and manifests -----------------------------------------------------------------------


def test_parse_date_accepts_day_and_suffix_and_defaults_to_utc_today() -> None:
    assert parse_date("20250115") == "20250115"
    assert parse_date("20250115-b") == "20250115-b"
    assert parse_date(None) == datetime.now(timezone.utc).strftime("%Y%m%d")
    for bad in ("2025-01-15", "20251399", "202501151030", "20250115-", "20250115-b/c", "../x"):
        with pytest.raises(ConfigError, match="YYYYMMDD-<suffix>"):
            parse_date(bad)


def test_manifest_entries_cover_the_three_trees_and_skip_the_log(tmp_path: Path) -> None:
    data = make_tree(tmp_path)
    entries = build_manifest_entries(data, None)
    keys = [e["key"] for e in entries]
    assert keys == sorted(keys)
    assert "data/questions/chess_task/chess_0000/first_frame.png" in keys
    assert "data/outputs/pilot/model-a/chess_task/chess_0000/metadata.json" in keys
    assert "data/evaluations/pilot/model-a/human-eval.json" in keys
    assert not [k for k in keys if "data_logging" in k or ".DS_Store" in k or "__pycache__" in k]
    first = next(e for e in entries if e["key"].endswith("chess_0000/first_frame.png"))
    assert first["sha256"] == sha256_file(first["path"]) and first["size"] == Path(first["path"]).stat().st_size


# -- mirror ------------------------------------------------------------------------------------


def test_a_version_only_on_s3_is_read_from_its_prefix_without_holding_its_source_list(tmp_path: Path,
                                                                                       s3_settings: Settings) -> None:
    """A machine without the release, a version mirrored to S3 only: ``recorded_release`` (verify's
    and pull's reader) downloads the prefix's manifest into its scratch folder and streams the list
    from there; ``recorded_manifest`` (a caller that wants the list) gets it whole, the same."""
    from tests.support.trees import make_tree as make_plain_tree
    from vmeval_hf.publish import publish_version, recorded_manifest, recorded_release
    from vmeval_hf.release.release_manifest import sources_of

    data = make_plain_tree(tmp_path / "a" / "data", {"chess": 2, "maze": 1})
    result = publish_version(data, settings=s3_settings, version="1.0", date=DAY, hub=False, log_entry=True)
    entry = result.entry
    assert entry is not None and entry["s3_uri"].endswith(f"/{DAY}/data")
    local = load_release(data / "releases" / "1.0")
    elsewhere = tmp_path / "b" / "data"
    manifest, file = recorded_release(s3_settings, entry, elsewhere, tmp_path / "scratch")
    assert file is not None and file.is_relative_to(tmp_path / "scratch") and "sources" not in manifest
    assert manifest == {k: v for k, v in local.items() if k != "sources"}
    assert list(sources_of(manifest, file)) == local["sources"]
    assert recorded_manifest(s3_settings, entry, elsewhere) == local
    gone = {**entry, "s3_uri": entry["s3_uri"].replace(DAY, "20000101")}
    assert recorded_release(s3_settings, gone, elsewhere, tmp_path / "scratch2") == (None, None)




def test_mirror_layout_bytes_and_manifest(tmp_path: Path, s3_settings: Settings) -> None:
    data = make_tree(tmp_path)
    rel = make_release(tmp_path, data)
    calls: list[tuple[int, int, int, int]] = []
    lock = threading.Lock()

    def progress(*args: int) -> None:
        with lock:
            calls.append(args)

    r = mirror_version(data, settings=s3_settings, date=DAY, release_dir=rel, hub={"repo": "org/x", "revision": "1.0",
                       "commit": "a" * 40}, progress=progress, workers=4)
    b = s3_settings.s3_bucket
    assert (r.uri, r.release_uri, r.manifest_uri) == (f"s3://{b}/{DAY}/data", f"s3://{b}/{DAY}/release",
                                                       f"s3://{b}/{DAY}/MANIFEST.json")
    assert (r.version, r.uploaded, r.skipped, r.already_complete) == ("1.0", r.files, 0, False)
    objects = keys_in(s3_settings)
    expected = {f"{DAY}/data/{p.relative_to(data).as_posix()}": p.read_bytes()
                for sub in ("questions", "outputs", "evaluations") for p in (data / sub).rglob("*")
                if p.is_file() and ".DS_Store" not in p.name and "__pycache__" not in p.parts}
    expected |= {f"{DAY}/release/{p.relative_to(rel).as_posix()}": p.read_bytes() for p in rel.rglob("*") if p.is_file()}
    manifest = json.loads(objects.pop(f"{DAY}/MANIFEST.json"))
    assert objects == expected
    assert manifest["schema"] == 1 and manifest["version"] == "1.0" and manifest["date"] == DAY
    assert manifest["content_sha256"] == json.loads((rel / "vmeval_release.json").read_text())["content_sha256"]
    assert manifest["hub"] == {"repo": "org/x", "revision": "1.0", "commit": "a" * 40}
    assert manifest["tool"].startswith("vmeval-hf ")
    assert {f"{DAY}/{e['key']}" for e in manifest["files"]} == set(expected)
    assert read_manifest(settings=s3_settings, date=DAY) == manifest
    copy, copy_file = read_release_manifest(settings=s3_settings, date=DAY, dest=tmp_path / "copy")
    assert copy_file.read_bytes() == (rel / "vmeval_release.json").read_bytes()
    assert copy == load_release(rel, sources=False) and copy["version"] == "1.0"
    assert read_release_manifest(settings=s3_settings, date="20000101", dest=tmp_path / "none") is None
    assert calls[-1] == (r.files, r.bytes, r.files, r.bytes)
    head = raw_client(s3_settings).head_object(Bucket=b, Key=f"{DAY}/data/questions/chess_task/chess_0000/first_frame.png")
    assert head["ContentType"] == "image/png"
    assert verify_s3(settings=s3_settings, date=DAY) == []


def test_put_object_sends_if_none_match_and_sha256(tmp_path: Path, s3_settings: Settings) -> None:
    """moto does not check checksums, so assert what is sent (the one Stubber test)."""
    from botocore.stub import ANY, Stubber

    data = tmp_path / "data"
    (data / "questions" / "chess_task" / "chess_0000").mkdir(parents=True)
    f = data / "questions" / "chess_task" / "chess_0000" / "prompt.txt"
    f.write_text("move the knight\n")
    import base64
    import hashlib

    client = make_client(s3_settings, 1)
    b, sha = s3_settings.s3_bucket, base64.b64encode(hashlib.sha256(f.read_bytes()).digest()).decode()
    with Stubber(client) as stub:
        stub.add_client_error("get_object", "NoSuchKey", http_status_code=404,
                              expected_params={"Bucket": b, "Key": f"{DAY}/MANIFEST.json"})
        stub.add_response("list_objects_v2", {"KeyCount": 0}, {"Bucket": b, "Prefix": f"{DAY}/"})
        stub.add_response("put_object", {}, {"Bucket": b, "Key": f"{DAY}/data/questions/chess_task/chess_0000/prompt.txt",
                                             "Body": f.read_bytes(), "IfNoneMatch": "*", "ChecksumAlgorithm": "SHA256",
                                             "ChecksumSHA256": sha, "ContentType": "text/plain"})
        stub.add_response("put_object", {}, {"Bucket": b, "Key": f"{DAY}/MANIFEST.json", "Body": ANY, "IfNoneMatch": "*",
                                             "ChecksumAlgorithm": "SHA256", "ChecksumSHA256": ANY,
                                             "ContentType": "application/json"})
        r = mirror_version(data, settings=s3_settings, date=DAY, workers=1, client=client)
        stub.assert_no_pending_responses()
    assert r.uploaded == 1


def test_rerun_of_a_complete_prefix_is_one_get(tmp_path: Path, s3_settings: Settings, s3_faults: Any) -> None:
    data = make_tree(tmp_path)
    first = mirror_version(data, settings=s3_settings, date=DAY)
    again = mirror_version(data, settings=s3_faults.settings, date=DAY)
    assert again.already_complete and again.uploaded == 0 and again.skipped == first.files
    assert again.uri == first.uri
    assert [r.method for r in s3_faults.proxy.records] == ["GET"]


def test_resume_after_failure_uploads_only_what_is_missing(tmp_path: Path, s3_settings: Settings, s3_faults: Any) -> None:
    data = make_tree(tmp_path, questions=4)
    proxy = s3_faults.proxy
    proxy.add(500, method="PUT", path=r"/data/", skip=6)  # the 7th data PUT onwards fails, retries too
    with pytest.raises(S3UnreachableError, match="re-run"):
        mirror_version(data, settings=s3_faults.settings, date=DAY, workers=3,
                       client=fast_client(s3_faults.settings, max_attempts=2))
    landed = keys_in(s3_settings, f"{DAY}/")
    assert f"{DAY}/MANIFEST.json" not in landed  # unfinished: never reported as published
    assert read_manifest(settings=s3_settings, date=DAY) is None
    assert 6 <= len(landed) < 20
    proxy.clear()
    r = mirror_version(data, settings=s3_faults.settings, date=DAY, workers=3)
    assert (r.uploaded, r.skipped) == (r.files - len(landed), len(landed))
    assert proxy.count("PUT", r"/data/") == r.files - len(landed)
    assert proxy.count("PUT", r"MANIFEST\.json") == 1
    assert proxy.count("HEAD") == len(landed)
    assert verify_s3(settings=s3_settings, date=DAY) == []


@pytest.mark.parametrize("attempts", [1, 3])
def test_the_s3_retry_budget_is_the_settings(tmp_path: Path, s3_faults: Any, attempts: int) -> None:
    s3_faults.proxy.add(503)  # S3 down: the first request (MANIFEST.json) is tried `attempts` times
    settings = s3_faults.settings.with_(s3_attempts=attempts)
    with pytest.raises(S3UnreachableError, match=f"after {attempts} attempts"):
        mirror_version(make_tree(tmp_path), settings=settings, date=DAY)
    assert s3_faults.proxy.count() == attempts, [(r.method, r.path) for r in s3_faults.proxy.records]


def test_transient_faults_are_retried_and_a_landed_retry_counts_as_done(tmp_path: Path, s3_settings: Settings,
                                                                        s3_faults: Any) -> None:
    data = make_tree(tmp_path, questions=4)
    proxy = s3_faults.proxy
    proxy.add("reset-after", method="PUT", path=r"prompt\.txt", times=1)  # lands, but the answer is lost
    proxy.add("stall", method="PUT", path=r"final_frame", times=1, stall=2)  # beyond the read timeout
    proxy.add("reset", method="PUT", path=r"first_frame", times=1)
    proxy.add(503, method="PUT", rate=0.15)
    proxy.add(429, rate=0.05)
    r = mirror_version(data, settings=s3_faults.settings, date=DAY, workers=8,
                       client=fast_client(s3_faults.settings, max_attempts=8, read_timeout=0.5))
    assert r.uploaded + r.skipped == r.files and r.skipped >= 1  # the 412 after reset-after was HEADed
    assert proxy.count(outcome="503") > 0 and proxy.count(outcome="stall") == 1
    assert verify_s3(settings=s3_settings, date=DAY) == []
    objects = keys_in(s3_settings, f"{DAY}/data/")
    assert all(objects[f"{DAY}/{e['key']}"] == Path(e["path"]).read_bytes() for e in build_manifest_entries(data))


def test_same_size_change_with_old_mtime_is_caught(tmp_path: Path, s3_settings: Settings) -> None:
    data = make_tree(tmp_path)
    mirror_version(data, settings=s3_settings, date=DAY)
    prompt = data / "questions" / "chess_task" / "chess_0000" / "prompt.txt"
    old = prompt.read_text()
    prompt.write_text(old.replace("0", "9"))
    assert len(prompt.read_bytes()) == len(old.encode())
    os.utime(prompt, (1577836800, 1577836800))  # 2020-01-01: older than the upload
    key = f"{DAY}/data/questions/chess_task/chess_0000/prompt.txt"
    problems = verify_s3(settings=s3_settings, date=DAY, expected=build_manifest_entries(data))
    assert [(m.key, m.problem) for m in problems] == [(key, "sha256")]
    with pytest.raises(S3ConflictError) as err:
        mirror_version(data, settings=s3_settings, date=DAY)
    assert key in str(err.value) and "--date 20250115-b" in str(err.value)


def test_another_version_on_the_same_day_is_refused(tmp_path: Path, s3_settings: Settings) -> None:
    data = make_tree(tmp_path)
    mirror_version(data, settings=s3_settings, date=DAY, version="1.0", content_sha256="c" * 64)
    (data / "questions" / "chess_task" / "chess_0000" / "goal.txt").write_text("new\n")
    with pytest.raises(S3ConflictError, match=r"already holds version 1\.0.*--date 20250115-b") as err:
        mirror_version(data, settings=s3_settings, date=DAY, version="1.1", content_sha256="d" * 64)
    assert "Traceback" not in str(err.value)
    r = mirror_version(data, settings=s3_settings, date="20250115-b", version="1.1", content_sha256="d" * 64)
    assert r.uri == f"s3://{s3_settings.s3_bucket}/20250115-b/data" and r.uploaded == r.files
    assert read_manifest(settings=s3_settings, date=DAY)["version"] == "1.0"  # untouched


def test_unfinished_prefix_with_foreign_objects_is_refused(tmp_path: Path, s3_settings: Settings) -> None:
    data = make_tree(tmp_path)
    client = raw_client(s3_settings)
    b = s3_settings.s3_bucket
    client.put_object(Bucket=b, Key=f"{DAY}/data/questions/other.txt", Body=b"x")
    with pytest.raises(S3ConflictError, match="other.txt"):
        mirror_version(data, settings=s3_settings, date=DAY)
    client.delete_object(Bucket=b, Key=f"{DAY}/data/questions/other.txt")
    key = f"{DAY}/data/questions/chess_task/chess_0000/prompt.txt"
    client.put_object(Bucket=b, Key=key, Body=b"Solve puzzle 7.\n")  # same size, other bytes
    with pytest.raises(S3ConflictError, match=key):
        mirror_version(data, settings=s3_settings, date=DAY)
    assert read_manifest(settings=s3_settings, date=DAY) is None


def test_concurrent_mirrors_of_the_same_tree_both_succeed(tmp_path: Path, s3_settings: Settings) -> None:
    """Two mirrors of one tree at once: both finish, each accounts for every file (sent, or refused
    by ``If-None-Match: *`` / listed as there), and the prefix verifies.

    Not asserted: that the two sent each object once between them. That is the server's promise
    (S3 evaluates ``If-None-Match`` atomically with the write); moto checks it and then stores the
    object (``moto/s3/responses.py``, ``put_object``), so two PUTs of one key that overlap can
    both pass, and under load they did (one failure in about ten full runs). Our side of put-once,
    a refused PUT counted as skipped, is asserted where no race is involved:
    ``test_transient_faults_are_retried_and_a_landed_retry_counts_as_done``."""
    data = make_tree(tmp_path)
    results: list[Any] = []

    def run() -> None:
        results.append(mirror_version(data, settings=s3_settings, date=DAY, workers=4))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2
    assert all(r.uploaded + r.skipped == r.files == results[0].files for r in results)
    assert results[0].files <= sum(r.uploaded for r in results) < 2 * results[0].files  # they did share the work
    assert verify_s3(settings=s3_settings, date=DAY) == []


def _composite(data: bytes, part: int) -> str:
    """S3's composite SHA-256 of ``data`` uploaded in parts of ``part`` bytes, computed here from
    the bytes (not by the code under test): base64(sha256(sha256(p1) + sha256(p2) + ...))-N."""
    digests = [hashlib.sha256(data[i:i + part]).digest() for i in range(0, len(data), part)]
    return f"{base64.b64encode(hashlib.sha256(b''.join(digests)).digest()).decode()}-{len(digests)}"


def _multipart_put(settings: Settings, key: str, body: bytes, part: int, metadata: dict[str, str]) -> None:
    """Overwrite ``key`` with ``body`` in parts carrying SHA-256 checksums (a forger's upload)."""
    client, b = raw_client(settings), settings.s3_bucket
    up = client.create_multipart_upload(Bucket=b, Key=key, ChecksumAlgorithm="SHA256", Metadata=metadata)
    parts = []
    for n, i in enumerate(range(0, len(body), part), 1):
        chunk = body[i:i + part]
        checksum = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
        r = client.upload_part(Bucket=b, Key=key, UploadId=up["UploadId"], PartNumber=n, Body=chunk,
                               ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum)
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumSHA256": checksum})
    client.complete_multipart_upload(Bucket=b, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": parts})


def test_large_files_go_multipart_and_verify_by_the_servers_composite_checksum(tmp_path: Path,
                                                                                 s3_settings: Settings) -> None:
    data = make_tree(tmp_path, questions=1)
    video = data / "questions" / "chess_task" / "chess_0000" / "ground_truth.mp4"
    body = os.urandom(6 * 2**20)
    video.write_bytes(body)
    r = mirror_version(data, settings=s3_settings, date=DAY, multipart_threshold="5MiB", multipart_chunksize="5MiB")
    key = f"{DAY}/data/questions/chess_task/chess_0000/ground_truth.mp4"
    head = raw_client(s3_settings).head_object(Bucket=s3_settings.s3_bucket, Key=key, ChecksumMode="ENABLED")
    expected = _composite(body, 5 * 2**20)
    assert head["ETag"].strip('"').endswith("-2") and "sha256" not in head["Metadata"]  # no client-side claim
    assert head["ChecksumSHA256"].split("-")[0] == expected.split("-")[0]  # computed by the server from its parts
    entry = next(e for e in read_manifest(settings=s3_settings, date=DAY)["files"] if e["key"].endswith(".mp4"))
    assert entry == {"key": key.removeprefix(f"{DAY}/"), "size": len(body), "sha256": sha256_file(video),
                     "composite_sha256": expected}
    assert verify_s3(settings=s3_settings, date=DAY) == []
    # resume over an existing multipart object compares the server's composite with the local file's
    raw_client(s3_settings).delete_object(Bucket=s3_settings.s3_bucket, Key=f"{DAY}/MANIFEST.json")
    again = mirror_version(data, settings=s3_settings, date=DAY, multipart_threshold="5MiB",
                           multipart_chunksize="5MiB")
    assert (again.uploaded, again.skipped) == (0, r.files)
    assert verify_s3(settings=s3_settings, date=DAY) == []
    # other bytes of the same size, uploaded in parts with the right sha256 claimed in metadata
    _multipart_put(s3_settings, key, os.urandom(len(body)), 5 * 2**20, {"sha256": sha256_file(video)})
    assert [(m.key, m.problem) for m in verify_s3(settings=s3_settings, date=DAY)] == [(key, "sha256")]


def test_a_large_file_edited_mid_upload_fails_naming_it_and_nothing_looks_complete(tmp_path: Path,
                                                                                   s3_settings: Settings,
                                                                                   s3_faults: Any) -> None:
    """A 20 MB file is edited (same size) once its multipart upload has begun: the upload is
    aborted and the mirror fails with one line naming the file; no object, no MANIFEST.json."""
    data = make_tree(tmp_path, questions=2)
    video = data / "outputs" / "pilot" / "model-a" / "chess_task" / "chess_0000" / "video" / "generated.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(os.urandom(20 * 2**20))
    edited: list[bytes] = []

    def edit_when_the_upload_starts(method: str, path: str) -> bool:
        if method == "POST" and path.endswith("generated.mp4?uploads") and not edited:
            with open(video, "r+b") as fh:  # same size, other bytes in the middle
                fh.seek(12 * 2**20)
                edited.append(os.urandom(2**20))
                fh.write(edited[0])
        return False  # no fault: the request goes through

    s3_faults.proxy.add(500, predicate=edit_when_the_upload_starts)
    with pytest.raises(IntegrityError) as err:
        mirror_version(data, settings=s3_faults.settings, date=DAY)
    assert edited and str(video) in str(err.value) and "\n" not in str(err.value)
    assert err.value.path == str(video) and "aborted" in str(err.value)
    key = f"{DAY}/data/outputs/pilot/model-a/chess_task/chess_0000/video/generated.mp4"
    landed = keys_in(s3_settings, f"{DAY}/")
    assert key not in landed and f"{DAY}/MANIFEST.json" not in landed
    assert read_manifest(settings=s3_settings, date=DAY) is None
    assert raw_client(s3_settings).list_multipart_uploads(Bucket=s3_settings.s3_bucket).get("Uploads") is None
    assert s3_faults.proxy.count("POST", r"generated\.mp4\?uploadId=") == 0  # never completed
    # the re-run mirrors the file as it is now, and verifies
    r = mirror_version(data, settings=s3_settings, date=DAY)
    assert r.uploaded == r.files - len(landed) and verify_s3(settings=s3_settings, date=DAY) == []
    assert keys_in(s3_settings, key)[key] == video.read_bytes()


def test_a_tree_edited_after_the_build_is_refused_before_anything_is_sent(tmp_path: Path, s3_faults: Any) -> None:
    data = make_tree(tmp_path)
    rel = make_release(tmp_path, data)
    prompt = data / "questions" / "maze_task" / "maze_0001" / "prompt.txt"
    prompt.write_text(prompt.read_text().replace("1", "7"))  # same size, other bytes
    with pytest.raises(IntegrityError) as err:
        mirror_version(data, settings=s3_faults.settings, date=DAY, release_dir=rel)
    assert str(prompt) in str(err.value) and "release 1.0" in str(err.value) and "\n" not in str(err.value)
    assert s3_faults.proxy.count() == 0  # not even a request: nothing sent, nothing marked complete
    prompt.write_text(prompt.read_text().replace("7", "1"))
    extra = data / "questions" / "chess_task" / "chess_0004" / "prompt.txt"
    extra.parent.mkdir()
    extra.write_text("a question the release does not have\n")
    with pytest.raises(IntegrityError, match="chess_0004/prompt.txt is not a source of the release"):
        mirror_version(data, settings=s3_faults.settings, date=DAY, release_dir=rel)
    assert s3_faults.proxy.count() == 0
    extra.unlink()
    assert mirror_version(data, settings=s3_faults.settings, date=DAY, release_dir=rel).uploaded > 0


def test_a_bad_multipart_size_is_named_before_any_upload(tmp_path: Path, s3_settings: Settings) -> None:
    data = make_tree(tmp_path)
    with pytest.raises(ConfigError, match=r"multipart_chunksize must be a positive size .* got 'lots'"):
        mirror_version(data, settings=s3_settings, date=DAY, multipart_chunksize="lots")
    with pytest.raises(ConfigError, match=r"multipart_threshold must be a positive size .* got 0"):
        mirror_version(data, settings=s3_settings, date=DAY, multipart_threshold=0)
    assert keys_in(s3_settings) == {}


def test_dry_run_writes_nothing(tmp_path: Path, s3_settings: Settings) -> None:
    data = make_tree(tmp_path)
    r = mirror_version(data, settings=s3_settings, date=DAY, dry_run=True)
    assert r.dry_run and r.uploaded == r.files and keys_in(s3_settings) == {}


# -- verify ------------------------------------------------------------------------------------


def test_verify_reports_missing_extra_and_overwritten(tmp_path: Path, s3_settings: Settings) -> None:
    data = make_tree(tmp_path)
    mirror_version(data, settings=s3_settings, date=DAY)
    client, b = raw_client(s3_settings), s3_settings.s3_bucket
    gone = f"{DAY}/data/questions/maze_task/maze_0001/prompt.txt"
    changed = f"{DAY}/data/questions/chess_task/chess_0000/first_frame.png"
    extra = f"{DAY}/data/questions/chess_task/chess_0000/notes.txt"
    client.delete_object(Bucket=b, Key=gone)
    body = client.get_object(Bucket=b, Key=changed)["Body"].read()
    client.put_object(Bucket=b, Key=changed, Body=bytes(reversed(body)))
    client.put_object(Bucket=b, Key=extra, Body=b"hello")
    got = {(m.key, m.problem) for m in verify_s3(settings=s3_settings, date=DAY)}
    assert got == {(gone, "missing"), (changed, "sha256"), (extra, "extra")}


def test_verify_of_an_unpublished_prefix_says_no_manifest(s3_settings: Settings) -> None:
    [m] = verify_s3(settings=s3_settings, date="20240101")
    assert m.problem == "no-manifest" and m.key == "20240101/MANIFEST.json"


# -- pull --------------------------------------------------------------------------------------


def test_pull_round_trip_tree_and_release(tmp_path: Path, s3_settings: Settings) -> None:
    data = make_tree(tmp_path / "src")
    rel = make_release(tmp_path / "src", data)
    mirror_version(data, settings=s3_settings, date=DAY, release_dir=rel)
    dest = tmp_path / "pulled"
    r = pull_s3(settings=s3_settings, date=DAY, dest=dest, workers=4)
    src = {p.relative_to(data / "questions"): p.read_bytes() for p in (data / "questions").rglob("*")
           if p.is_file() and p.name != ".DS_Store" and "__pycache__" not in p.parts}
    got = {p.relative_to(dest / "questions"): p.read_bytes() for p in (dest / "questions").rglob("*") if p.is_file()}
    assert got == src and r.root == dest / "questions" and r.downloaded == len(src) and r.version == "1.0"
    again = pull_s3(settings=s3_settings, date=DAY, dest=dest)
    assert (again.downloaded, again.skipped) == (0, len(src))
    rr = pull_s3(settings=s3_settings, date=DAY, dest=tmp_path / "rel", release=True)
    assert {p.relative_to(tmp_path / "rel").as_posix() for p in (tmp_path / "rel").rglob("*") if p.is_file()} == \
        {p.relative_to(rel).as_posix() for p in rel.rglob("*") if p.is_file()}
    assert rr.files == 3


def test_pull_refuses_a_corrupted_object(tmp_path: Path, s3_settings: Settings) -> None:
    data = make_tree(tmp_path / "src")
    mirror_version(data, settings=s3_settings, date=DAY)
    key = f"{DAY}/data/questions/maze_task/maze_0001/final_frame.png"
    client = raw_client(s3_settings)
    body = client.get_object(Bucket=s3_settings.s3_bucket, Key=key)["Body"].read()
    client.put_object(Bucket=s3_settings.s3_bucket, Key=key, Body=body[:-1] + b"\x00")
    dest = tmp_path / "pulled"
    with pytest.raises(IntegrityError, match=key) as err:
        pull_s3(settings=s3_settings, date=DAY, dest=dest, workers=1)
    assert err.value.key == key
    target = dest / "questions" / "maze_task" / "maze_0001" / "final_frame.png"
    assert not target.exists() and not list(target.parent.glob(".*part"))


def test_pull_without_a_manifest_is_refused(tmp_path: Path, s3_settings: Settings) -> None:
    with pytest.raises(VmevalError, match="no MANIFEST.json"):
        pull_s3(settings=s3_settings, date=DAY, dest=tmp_path / "x")


# -- errors ------------------------------------------------------------------------------------


def _assert_clean(err: BaseException) -> None:
    text = str(err)
    assert "Traceback" not in text and "botocore" not in text and TEST_SECRET_KEY not in text
    assert "\n" not in text


def test_missing_bucket_says_how_to_create_it(tmp_path: Path, s3_settings: Settings) -> None:
    data = make_tree(tmp_path)
    settings = s3_settings.with_(s3_bucket="vmeval-no-such-bucket")
    with pytest.raises(S3BucketNotFoundError, match=r"aws s3 mb s3://vmeval-no-such-bucket") as err:
        mirror_version(data, settings=settings, date=DAY)
    _assert_clean(err.value)
    with pytest.raises(S3BucketNotFoundError):
        verify_s3(settings=settings, date=DAY)


def test_bad_credentials_are_one_clear_error(tmp_path: Path, s3_settings: Settings) -> None:
    from moto.core.authorization import enable_iam_authentication

    data = make_tree(tmp_path)
    with enable_iam_authentication(), pytest.raises(S3AuthError, match="AWS_ACCESS_KEY_ID") as err:
        mirror_version(data, settings=s3_settings, date=DAY)
    _assert_clean(err.value)


def test_no_credentials_is_one_clear_error(tmp_path: Path, s3_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    settings = Settings(s3_bucket=s3_settings.s3_bucket, aws_endpoint_url=s3_settings.aws_endpoint_url)
    with pytest.raises(S3AuthError, match="no AWS credentials") as err:
        mirror_version(make_tree(tmp_path), settings=settings, date=DAY)
    _assert_clean(err.value)


def test_unreachable_endpoint_is_one_clear_error(tmp_path: Path, s3_settings: Settings) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = s3_settings.with_(aws_endpoint_url=f"http://127.0.0.1:{port}")
    with pytest.raises(S3UnreachableError, match=f"cannot reach http://127.0.0.1:{port}") as err:
        mirror_version(make_tree(tmp_path), settings=settings, date=DAY, client=fast_client(settings, max_attempts=1))
    _assert_clean(err.value)


# -- seed compatibility ------------------------------------------------------------------------


def test_sync_to_s3_returns_the_data_uri(tmp_path: Path, s3_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert sync_to_s3(date_prefix=DAY) == f"s3://{s3_settings.s3_bucket}/{DAY}/data"
    assert sync_to_s3(DAY, data_dir=tmp_path / "data") == f"s3://{s3_settings.s3_bucket}/{DAY}/data"
    today = datetime.now(timezone.utc).strftime("%Y%m%d")
    assert sync_to_s3() == f"s3://{s3_settings.s3_bucket}/{today}/data"


def _script(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "s3_sync.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))


def test_s3_sync_script_mirrors_logs_and_finds_a_rerun_complete(tmp_path: Path, s3_settings: Settings) -> None:
    data = make_tree(tmp_path)
    uri = f"s3://{s3_settings.s3_bucket}/{DAY}/data"
    p = _script("--date", DAY, "--log", "--quiet", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert uri in p.stdout
    entry = json.loads((data / "data_logging" / "version_log.json").read_text())["versions"][-1]
    assert entry["s3_uri"] == uri and entry["files"] == len(build_manifest_entries(data)) and entry["version"] == "1.0"
    again = _script("--date", DAY, "--data-dir", str(data), "--quiet", cwd=REPO)
    assert again.returncode == 0 and "already complete" in again.stdout


def test_s3_sync_script_refuses_a_bad_date_as_a_usage_error(tmp_path: Path, s3_settings: Settings) -> None:
    make_tree(tmp_path)
    bad = _script("--date", "2025-01-15", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("ERROR: ") and "Traceback" not in bad.stderr


def test_s3_sync_script_names_a_missing_bucket_in_one_line(tmp_path: Path, s3_settings: Settings) -> None:
    make_tree(tmp_path)
    missing = subprocess.run([sys.executable, str(REPO / "scripts" / "s3_sync.py"), "--date", DAY, "--quiet"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, PYTHONPATH=str(REPO), S3_BUCKET="vmeval-no-such-bucket"))
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines() == [missing.stderr.strip()] and "aws s3 mb" in missing.stderr


# -- MANIFEST.json read as a stream ------------------------------------------------------------------


def _rewrite_manifest(settings: Settings, doc: dict[str, Any], *, text: bytes | None = None) -> None:
    raw_client(settings).put_object(Bucket=settings.s3_bucket, Key=f"{DAY}/MANIFEST.json",
                                    Body=text if text is not None else canonical_json(doc).encode())


def test_the_manifest_is_streamed_in_key_order_and_an_unordered_one_read_whole(
        tmp_path: Path, s3_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """``open_manifest``: the prefix's own ``MANIFEST.json`` streams from a temporary copy (removed
    after); one whose files are out of key order is read whole and sorted, with the same result;
    one that is not ours is refused as ``manifest_at`` refuses it; no manifest is None."""
    import tempfile

    from vmeval_hf.s3.mirror import open_bucket, open_manifest

    data = make_tree(tmp_path)
    mirror_version(data, settings=s3_settings, date=DAY)
    doc = read_manifest(settings=s3_settings, date=DAY)
    assert doc is not None
    bucket = open_bucket(s3_settings, 1, None)
    private = tmp_path / "tmp"  # this test's own temporary folder: other tests' come and go in parallel
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    with open_manifest(bucket, DAY) as streamed:
        assert streamed is not None and streamed._path is not None  # read as a stream, from its copy
        assert streamed._path.parent.parent == private
        assert list(streamed.files()) == doc["files"] and streamed.head == {k: v for k, v in doc.items() if k != "files"}
    assert list(private.iterdir()) == []

    _rewrite_manifest(s3_settings, {**doc, "files": list(reversed(doc["files"]))})
    with open_manifest(bucket, DAY) as whole:
        assert whole is not None and whole._path is None and list(whole.files()) == doc["files"]
    assert verify_s3(settings=s3_settings, date=DAY) == []

    _rewrite_manifest(s3_settings, {**doc, "schema": 99})
    with pytest.raises(S3Error, match="not a schema-1 vmeval-hf manifest"), open_manifest(bucket, DAY):
        pass
    _rewrite_manifest(s3_settings, doc, text=b'{"files": [')
    with pytest.raises(S3Error, match="not valid JSON"), open_manifest(bucket, DAY):
        pass
    with open_manifest(bucket, "20240101") as none:
        assert none is None


@pytest.mark.parametrize("seed", range(30))
def test_the_listing_and_the_manifest_walked_side_by_side_find_what_sets_find(seed: int) -> None:
    """``_side_by_side`` (verify_s3's walk) against the same comparison made with whole sets, on
    random manifests and listings: missing, extra and size problems, and the objects left to HEAD."""
    import random

    from vmeval_hf.s3.read import _side_by_side

    rng = random.Random(seed)
    keys = sorted({f"data/questions/{rng.choice('abc')}_task/{rng.randrange(40):04d}/{rng.choice('xyz')}"
                   for _ in range(rng.randrange(0, 60))})
    files = [{"key": k, "size": rng.randrange(1, 4)} for k in keys if rng.random() < 0.8]
    listed = sorted([(f"{DAY}/{k}", rng.randrange(1, 4)) for k in keys if rng.random() < 0.8]
                    + [(f"{DAY}/MANIFEST.json", 9)])
    problems: list[Any] = []
    heads = list(_side_by_side(iter(files), iter(listed), DAY, problems))
    sizes = dict(listed)
    sizes.pop(f"{DAY}/MANIFEST.json")
    wanted = {f"{DAY}/{f['key']}": f["size"] for f in files}
    assert {(m.key, m.problem) for m in problems} == (
        {(k, "missing") for k in wanted if k not in sizes}
        | {(k, "extra") for k in sizes if k not in wanted}
        | {(k, "size") for k in wanted if k in sizes and sizes[k] != wanted[k]})
    assert [k for k, _ in heads] == [k for k in sorted(wanted) if sizes.get(k) == wanted[k]]


def test_pull_refuses_an_unsafe_key_before_writing_anything(tmp_path: Path, s3_settings: Settings) -> None:
    """A ``MANIFEST.json`` naming a key that would land outside the destination (listed last, so
    every other file would be downloaded first by a pull that checked as it went): refused, with
    nothing written."""
    data = make_tree(tmp_path / "src")
    mirror_version(data, settings=s3_settings, date=DAY)
    doc = read_manifest(settings=s3_settings, date=DAY)
    assert doc is not None
    doc["files"].append({"key": "data/questions/zz/../../../escape.txt", "size": 1, "sha256": "0" * 64})
    _rewrite_manifest(s3_settings, doc)
    dest = tmp_path / "pulled"
    with pytest.raises(S3Error, match="unsafe key"):
        pull_s3(settings=s3_settings, date=DAY, dest=dest, workers=2)
    assert not dest.exists()


@pytest.mark.parametrize("damage", ["no size", "size as text", "no sha256", "key a number", "entry a string"])
def test_a_manifest_entry_altered_in_shape_is_named_by_verify_and_pull(tmp_path: Path, s3_settings: Settings,
                                                                     damage: str) -> None:
    """A ``MANIFEST.json`` entry missing a field, or of another type: verify and pull each raise one
    IntegrityError naming the manifest and the entry, and pull writes nothing (before: a raw
    KeyError, TypeError or AttributeError from the first reader to touch it)."""
    data = make_tree(tmp_path / "src")
    mirror_version(data, settings=s3_settings, date=DAY)
    doc = read_manifest(settings=s3_settings, date=DAY)
    assert doc is not None
    entry = doc["files"][1]
    if damage == "no size":
        del entry["size"]
    elif damage == "size as text":
        entry["size"] = str(entry["size"])
    elif damage == "no sha256":
        del entry["sha256"]
    elif damage == "key a number":
        entry["key"] = 7
    else:
        doc["files"][1] = entry["key"]
    _rewrite_manifest(s3_settings, doc)
    where = f"s3://{s3_settings.s3_bucket}/{DAY}/MANIFEST.json: files entry 1 is not a {{key, size, sha256}} entry"
    with pytest.raises(IntegrityError) as verified:
        verify_s3(settings=s3_settings, date=DAY)
    assert str(verified.value).startswith(where) and "new --date" in str(verified.value)
    dest = tmp_path / "pulled"
    with pytest.raises(IntegrityError) as pulled:
        pull_s3(settings=s3_settings, date=DAY, dest=dest, workers=2)
    assert str(pulled.value) == str(verified.value)
    assert not dest.exists()


@pytest.mark.parametrize("slots", [1, 3])
def test_parts_of_files_uploaded_side_by_side_are_read_into_one_fixed_set_of_buffers(tmp_path: Path,
                                                                                    s3_settings: Settings,
                                                                                    slots: int) -> None:
    """Four files of 2.5 parts each, uploaded by four threads at once through a pool of 1 or 3
    slots: every object holds its file's bytes with the server's composite checksum (a buffer
    reused while its part was still being hashed would fail the upload), and the parts were read
    into at most that many buffers, reused part after part (the memory the parts hold does not
    grow with the number of files uploaded side by side)."""
    from concurrent.futures import ThreadPoolExecutor

    from vmeval_hf.s3.client import S3Bucket
    from vmeval_hf.s3.transfer import PartPool, upload_verified

    part = 5 * 2**20
    bucket, pool = S3Bucket(make_client(s3_settings), s3_settings), PartPool(threads=2, in_flight=slots)
    files = {}
    for i in range(4):
        path = tmp_path / f"big-{i}.bin"
        path.write_bytes(os.urandom(part * 2 + part // 2))
        files[f"side-by-side/big-{i}.bin"] = path

    def upload(key: str) -> str | None:
        path = files[key]
        return upload_verified(bucket, pool, key, str(path), path.stat().st_size, sha256_file(path), chunksize=part)

    try:
        with ThreadPoolExecutor(4) as threads:
            composites = dict(zip(files, threads.map(upload, files), strict=True))
    finally:
        pool.close()
    stored = keys_in(s3_settings, "side-by-side/")
    for key, path in files.items():
        body = path.read_bytes()
        assert stored[key] == body and composites[key] == _composite(body, part)
    assert 1 <= pool.buffers_made <= slots
