"""Secrets (``HF_TOKEN``, AWS keys, the session token) never appear in anything the tool writes.

The publisher runs with distinctive values (:data:`tests.support.reliability.SECRETS`), with
``--debug`` (DEBUG logging of every library: botocore logs request headers there), on success and
failure paths; the tests then search stdout, stderr, every file left in the work folder (release,
card, version log, pulled copies, caches), every object in the bucket, the Hub's storage, Python
log records (``caplog`` at DEBUG, in process) and exception messages. The fault-injection tests
search their runs' output (full of retry warnings quoting errors) too. Only ``vmeval-hf sandbox``
prints credentials, on purpose: those of the local sandbox.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.reliability import (
    AWS_KEY_SECRET,
    AWS_SECRET_SECRET,
    AWS_TOKEN_SECRET,
    DAY,
    HUB_SECRET,
    SECRETS,
    Stage,
    error_lines,
    secrets_in,
)
from tests.support.s3 import TEST_REGION, raw_client
from vmeval_hf.cli import cli

WRONG_HF_TOKEN = "hf_WRONGbutSECRETtoken0c55e1d2"


def _file_leaks(*roots: Path, secrets: Iterable[str] = SECRETS) -> list[str]:
    found: list[str] = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                found += secrets_in(path.read_bytes(), str(path), secrets)
    return found


def _bucket_leaks(stage: Stage) -> list[str]:
    client = raw_client(stage.direct)
    found: list[str] = []
    for key in stage.keys():
        found += secrets_in(client.get_object(Bucket=stage.bucket, Key=key)["Body"].read(), f"s3://{key}")
    return found


@pytest.mark.slow
def test_no_secret_in_any_output_of_a_debug_release_cycle(stage: Stage, tmp_path: Path) -> None:
    runs = {
        "publish": stage.run("--debug", *stage.publish_args()),
        "publish-again (no-op)": stage.run("--debug", *stage.publish_args("--version", "1.0")),
        "publish --json": stage.run("--debug", *stage.publish_args("--version", "1.0", "--json")),
        "verify": stage.run("--debug", "verify", "1.0", "--data-dir", stage.data),
        "versions": stage.run("--debug", "versions", "show", "1.0", "--json", "--data-dir", stage.data),
        "pull s3": stage.run("--debug", "pull", "1.0", "--dest", tmp_path / "from-s3", "--data-dir", stage.data),
        "pull hub": stage.run("--debug", "pull", "1.0", "--from", "hub", "--dest", tmp_path / "from-hub",
                              "--data-dir", stage.data),
        "dry run": stage.run("--debug", "publish", "--data-dir", stage.data, "--version", "1.1", "--dry-run"),
    }
    for name, proc in runs.items():
        assert proc.returncode == 0, (name, proc.stderr[-3000:])
    assert "DEBUG botocore" in runs["publish"].stderr  # the debug log really was on
    leaks = [leak for name, proc in runs.items()
             for leak in secrets_in(proc.stdout, f"{name} stdout") + secrets_in(proc.stderr, f"{name} stderr")]
    leaks += _file_leaks(stage.work, tmp_path / "from-s3", tmp_path / "from-hub", stage.hf_home, stage.hub.store.root)
    leaks += _bucket_leaks(stage)
    assert leaks == []
    card = (stage.data / "releases" / "1.0" / "README.md").read_text(encoding="utf-8")
    assert stage.repo in card and not secrets_in(card, "card")


@pytest.mark.slow
@pytest.mark.parametrize("failure", ["hub-refuses-token", "s3-denied", "bad-tree"])
def test_no_secret_in_the_output_of_a_failing_debug_publish(stage: Stage, failure: str) -> None:
    env = stage.env()
    secrets = SECRETS
    if failure == "hub-refuses-token":
        env = stage.env(HF_TOKEN=WRONG_HF_TOKEN)
        secrets = (*SECRETS, WRONG_HF_TOKEN)
    elif failure == "s3-denied":
        stage.s3_proxy.add(403)
    else:
        (stage.data / "questions" / "chess_task" / "chess_0001" / "prompt.txt").write_bytes(b"\xff")
    proc = stage.run("--debug", *stage.publish_args(), env=env)
    assert proc.returncode == 1 and len(error_lines(proc.stderr)) == 1, proc.stderr[-3000:]
    assert "Traceback" in proc.stderr  # --debug shows the whole chain of exceptions: searched too
    leaks = secrets_in(proc.stdout, "stdout", secrets) + secrets_in(proc.stderr, "stderr", secrets)
    leaks += _file_leaks(stage.work, stage.hf_home, secrets=secrets)
    assert leaks == []


@pytest.fixture
def in_process(stage: Stage, monkeypatch: pytest.MonkeyPatch) -> Stage:
    """The CLI in this process, with the stage's secrets in the environment."""
    monkeypatch.chdir(stage.work)
    for key, value in {"HF_ENDPOINT": stage.hub_proxy.url, "HF_TOKEN": HUB_SECRET,
                       "AWS_ENDPOINT_URL": stage.s3_proxy.url, "AWS_ACCESS_KEY_ID": AWS_KEY_SECRET,
                       "AWS_SECRET_ACCESS_KEY": AWS_SECRET_SECRET, "AWS_SESSION_TOKEN": AWS_TOKEN_SECRET,
                       "AWS_DEFAULT_REGION": TEST_REGION, "S3_BUCKET": stage.bucket,
                       "VMEVAL_HF_REPO": stage.repo}.items():
        monkeypatch.setenv(key, value)
    return stage


def _record_leaks(records: list[logging.LogRecord]) -> list[str]:
    found: list[str] = []
    for record in records:
        found += secrets_in(record.getMessage(), f"log {record.name}")
        found += secrets_in(record.exc_text or "", f"log {record.name} exc_text")
    return found


def _exception_leaks(exc: BaseException | None) -> list[str]:
    found: list[str] = []
    seen = 0
    while exc is not None and seen < 20:
        found += secrets_in(f"{exc}\n{exc!r}\n{exc.args!r}", f"exception {type(exc).__name__}")
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return found


@pytest.mark.slow
def test_no_secret_in_python_log_records_or_exceptions(in_process: Stage, caplog: pytest.LogCaptureFixture) -> None:
    stage = in_process
    caplog.set_level(logging.DEBUG)
    ok = CliRunner().invoke(cli, ["--debug", "publish", "--data-dir", str(stage.data), "--log", "--date", DAY])
    assert ok.exit_code == 0, (ok.stderr, ok.exception)
    assert any(r.name.startswith("botocore") for r in caplog.records)  # DEBUG records were captured

    stage.s3_proxy.add(403)
    stage.hub_proxy.add(403)
    failed = CliRunner().invoke(cli, ["--debug", "publish", "--data-dir", str(stage.data), "--log",
                                      "--version", "2.0", "--date", "20250116"])
    assert failed.exit_code == 1
    leaks = _record_leaks(caplog.records) + secrets_in(caplog.text, "caplog text")
    leaks += secrets_in(ok.output, "cli output") + secrets_in(failed.output, "cli output")
    assert leaks == []

    # the library's exceptions, raised to a Python caller, carry no secret either
    from vmeval_hf.config import Settings
    from vmeval_hf.errors import RemoteError
    from vmeval_hf.publish import publish_version

    settings = Settings.from_env()
    assert set(settings.secrets) == set(SECRETS)
    for side, proxy in (("s3", stage.s3_proxy), ("hub", stage.hub_proxy)):
        with pytest.raises(RemoteError) as err:
            publish_version(stage.data, settings=settings, version="3.0", date="20250117",
                            hub=side == "hub", s3=side == "s3")
        assert err.value.side == side
        assert _exception_leaks(err.value) == []
        proxy.clear()
    with pytest.raises(RemoteError) as err:
        publish_version(stage.data, settings=settings.with_(hf_token=WRONG_HF_TOKEN), version="3.0", s3=False)
    chain = []
    exc: BaseException | None = err.value
    while exc is not None:
        chain.append(f"{exc}\n{exc!r}")
        exc = exc.__cause__ or exc.__context__
    assert not any(WRONG_HF_TOKEN in text for text in chain)
