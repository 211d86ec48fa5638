"""Settings: ``.env`` and the environment read in one place; secrets never shown."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.trees import make_tree
from vmeval_hf import Settings
from vmeval_hf.cli import cli
from vmeval_hf.errors import ConfigError

HF_SECRET = "hf_SeCrEtToKeN0123456789abcdefXYZ"
AWS_SECRET = "aWsSeCrEt/KEY+9876543210zyxwvutsrq"
AWS_SESSION = "IQoJb3JpZ2luX2VjSESSIONtokenQQQ111"
SECRETS = (HF_SECRET, AWS_SECRET, AWS_SESSION)

ENV_NAMES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "VMEVAL_HF_REPO", "S3_BUCKET",
             "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
             "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "VMEVAL_HUB_ATTEMPTS",
             "VMEVAL_S3_ATTEMPTS")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def write_env(folder: Path, **values: str) -> Path:
    path = folder / ".env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    return path


def test_defaults_without_env(tmp_path: Path) -> None:
    s = Settings.from_env(environ={}, dotenv_path=tmp_path / "absent.env")
    assert (s.hf_token, s.hf_repo, s.s3_bucket, s.aws_region, s.aws_endpoint_url) == (
        None, "org/vmevalkit-questions", "vmevalkit", "us-east-2", None)
    assert s.hub_endpoint == "https://huggingface.co" and not s.hub_is_local
    assert s.secrets == ()


def test_retry_budgets_come_from_the_environment(tmp_path: Path) -> None:
    absent = tmp_path / "absent.env"
    s = Settings.from_env(environ={}, dotenv_path=absent)
    assert (s.hub_attempts, s.s3_attempts) == (5, 5)
    s = Settings.from_env(environ={"VMEVAL_HUB_ATTEMPTS": "2", "VMEVAL_S3_ATTEMPTS": "20"}, dotenv_path=absent)
    assert (s.hub_attempts, s.s3_attempts) == (2, 20)
    for name in ("VMEVAL_HUB_ATTEMPTS", "VMEVAL_S3_ATTEMPTS"):
        for bad in ("0", "21", "three", "2.5", "-1"):
            with pytest.raises(ConfigError, match=f"{name}='{re.escape(bad)}': give the number of tries"):
                Settings.from_env(environ={name: bad}, dotenv_path=absent)


def test_a_bad_retry_budget_is_one_error_line_from_the_cli(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.chdir(tmp_path)
    clean_env.setenv("VMEVAL_S3_ATTEMPTS", "lots")
    result = CliRunner().invoke(cli, ["verify", "1.0", "--data-dir", str(tmp_path / "data")])
    assert result.exit_code != 0
    assert "VMEVAL_S3_ATTEMPTS='lots': give the number of tries per request" in result.output
    assert "Traceback" not in result.output


def test_dotenv_in_the_working_dir_is_read(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    write_env(tmp_path, HF_TOKEN=HF_SECRET, VMEVAL_HF_REPO="acme/questions", S3_BUCKET="acme-bucket",
              AWS_REGION="eu-west-1", AWS_SECRET_ACCESS_KEY=AWS_SECRET,
              HF_ENDPOINT="http://127.0.0.1:8123/")
    clean_env.chdir(tmp_path)
    s = Settings.from_env()
    assert (s.hf_token, s.hf_repo, s.s3_bucket, s.aws_region, s.aws_secret_access_key) == (
        HF_SECRET, "acme/questions", "acme-bucket", "eu-west-1", AWS_SECRET)
    assert s.hub_endpoint == "http://127.0.0.1:8123" and s.hub_is_local
    assert "HF_TOKEN" not in os.environ  # .env values are not copied into the process environment


def test_real_environment_wins_over_dotenv(tmp_path: Path) -> None:
    env_file = write_env(tmp_path, HF_TOKEN="from-dotenv", S3_BUCKET="dotenv-bucket",
                         AWS_DEFAULT_REGION="eu-west-1")
    s = Settings.from_env(environ={"HF_TOKEN": "from-environment", "AWS_DEFAULT_REGION": "ap-south-1"},
                          dotenv_path=env_file)
    assert (s.hf_token, s.s3_bucket, s.aws_region) == ("from-environment", "dotenv-bucket", "ap-south-1")


def test_aws_default_region_preferred_over_aws_region(tmp_path: Path) -> None:
    s = Settings.from_env(environ={"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-west-2"},
                          dotenv_path=tmp_path / "absent.env")
    assert s.aws_region == "us-west-2"
    assert Settings.from_env(environ={"AWS_REGION": "eu-west-1"},
                             dotenv_path=tmp_path / "absent.env").aws_region == "eu-west-1"


def test_repr_and_str_hide_secrets(tmp_path: Path) -> None:
    env_file = write_env(tmp_path, HF_TOKEN=HF_SECRET, AWS_ACCESS_KEY_ID="AKIAEXAMPLEKEYID0001",
                         AWS_SECRET_ACCESS_KEY=AWS_SECRET, AWS_SESSION_TOKEN=AWS_SESSION)
    s = Settings.from_env(environ={}, dotenv_path=env_file)
    for text in (repr(s), str(s), f"{s}", f"{s!r}", repr([s])):
        for secret in (*SECRETS, "AKIAEXAMPLEKEYID0001"):
            assert secret not in text
    assert "hf_token='***'" in repr(s)
    assert set(s.secrets) == {*SECRETS, "AKIAEXAMPLEKEYID0001"}
    assert repr(s.with_(s3_bucket="other")).count("'***'") == 4


@pytest.fixture
def secret_workdir(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> Path:
    """A working dir holding a ``.env`` with distinctive secrets and a data tree.

    A stray file named after the HF token makes the secret reach ``validate``'s
    report, so the test checks the scrubbing, not only that nobody printed it.
    """
    write_env(tmp_path, HF_TOKEN=HF_SECRET, AWS_SECRET_ACCESS_KEY=AWS_SECRET,
              AWS_SESSION_TOKEN=AWS_SESSION, AWS_ACCESS_KEY_ID="AKIAEXAMPLEKEYID0001")
    data = make_tree(tmp_path / "data", {"chess": 2})
    (data / "questions" / "chess_task" / "chess_0000" / f"{HF_SECRET}.txt").write_text("x", encoding="utf-8")
    clean_env.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("args", [
    ["--help"],
    ["validate"],
    ["validate", "--json"],
    ["manifest"],
    ["manifest", "--check", "--json"],
    ["--debug", "validate"],
    ["--debug", "validate", "--json"],
    ["--debug", "manifest", "--data-dir", "nowhere"],
], ids=" ".join)
def test_secrets_in_dotenv_never_appear_in_output(secret_workdir: Path, args: list[str],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (0, 1), result.output
    for secret in SECRETS:
        for text in (result.stdout, result.stderr, caplog.text):
            assert secret not in text
    if args[-1] == "validate":
        assert "***.txt" in result.stdout  # the report line about the stray file was scrubbed
