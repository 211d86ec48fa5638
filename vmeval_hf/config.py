"""Settings: the one place environment variables and ``.env`` are read.

Library functions take a :class:`Settings` (or plain parameters); only the CLI
edge and the seed-compatible scripts call :meth:`Settings.from_env`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError

#: tries per request before a side counts as down (``VMEVAL_HUB_ATTEMPTS``, ``VMEVAL_S3_ATTEMPTS``):
#: with the backoff, a dead Hub fails a command in about 8 s, a dead S3 endpoint in about 5 s
DEFAULT_HUB_ATTEMPTS = 5
DEFAULT_S3_ATTEMPTS = 5
MAX_ATTEMPTS = 20
DEFAULT_BUCKET = "vmevalkit"
DEFAULT_REGION = "us-east-2"
DEFAULT_REPO = "org/vmevalkit-questions"
DEFAULT_RESULTS_REPO = "org/vmevalkit-results"
HUB_PUBLIC_ENDPOINT = "https://huggingface.co"

_SECRET_FIELDS = ("hf_token", "aws_secret_access_key", "aws_session_token", "aws_access_key_id")


def _redact(value: str | None) -> str:
    return "None" if value is None else "'***'"


@dataclass(frozen=True)
class Settings:
    """Everything vmeval-hf needs to reach the Hub and S3.

    Secrets (``hf_token``, AWS keys) never appear in ``repr()`` or ``str()``.
    """

    hf_token: str | None = field(default=None, repr=False)
    hf_endpoint: str | None = None
    hf_repo: str = DEFAULT_REPO
    results_repo: str = DEFAULT_RESULTS_REPO  # the results dataset's Hub repo (`vmeval-hf results`)
    s3_bucket: str = DEFAULT_BUCKET
    aws_region: str = DEFAULT_REGION
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_session_token: str | None = field(default=None, repr=False)
    aws_endpoint_url: str | None = None
    hub_attempts: int = DEFAULT_HUB_ATTEMPTS
    s3_attempts: int = DEFAULT_S3_ATTEMPTS

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            shown = _redact(value) if f.name in _SECRET_FIELDS else repr(value)
            parts.append(f"{f.name}={shown}")
        return f"Settings({', '.join(parts)})"

    __str__ = __repr__

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secret values set, so callers can scrub them from any text."""
        return tuple(v for v in (getattr(self, n) for n in _SECRET_FIELDS) if v)

    @property
    def hub_endpoint(self) -> str:
        return (self.hf_endpoint or HUB_PUBLIC_ENDPOINT).rstrip("/")

    @property
    def hub_is_local(self) -> bool:
        """True when the Hub endpoint is a loopback server (the sandbox), never for the real Hub."""
        host = urlsplit(self.hub_endpoint).hostname or ""
        return host in {"127.0.0.1", "localhost", "::1"}

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        dotenv_path: str | os.PathLike[str] | None = None,
    ) -> Settings:
        """Read settings from ``.env`` (in the working directory by default) and the environment.

        The real environment wins over ``.env``. ``.env`` values are not copied into
        ``os.environ``.
        """
        from dotenv import dotenv_values  # start-up: ~20 ms, for .env only

        env_file = Path(dotenv_path) if dotenv_path is not None else Path.cwd() / ".env"
        merged: dict[str, str] = {}
        if env_file.is_file():
            merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        merged.update(os.environ if environ is None else environ)

        def get(*names: str) -> str | None:
            for name in names:
                value = merged.get(name)
                if value:
                    return value
            return None

        return cls(
            hf_token=get("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"),
            hf_endpoint=get("HF_ENDPOINT"),
            hf_repo=get("VMEVAL_HF_REPO") or DEFAULT_REPO,
            results_repo=get("VMEVAL_RESULTS_REPO") or DEFAULT_RESULTS_REPO,
            s3_bucket=get("S3_BUCKET") or DEFAULT_BUCKET,
            aws_region=get("AWS_DEFAULT_REGION", "AWS_REGION") or DEFAULT_REGION,
            aws_access_key_id=get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=get("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=get("AWS_SESSION_TOKEN"),
            aws_endpoint_url=get("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
            hub_attempts=_attempts("VMEVAL_HUB_ATTEMPTS", get("VMEVAL_HUB_ATTEMPTS"), DEFAULT_HUB_ATTEMPTS),
            s3_attempts=_attempts("VMEVAL_S3_ATTEMPTS", get("VMEVAL_S3_ATTEMPTS"), DEFAULT_S3_ATTEMPTS),
        )


def _attempts(name: str, value: str | None, default: int) -> int:
    if value is None:
        return default
    try:
        n = int(value)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_ATTEMPTS:
        raise ConfigError(f"{name}={value!r}: give the number of tries per request, a whole number from 1 to "
                          f"{MAX_ATTEMPTS} (default {default})")
    return n


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where vmeval-hf keeps what it can always compute again (the frame check's verdicts):
    ``VMEVAL_CACHE_DIR``, else ``$XDG_CACHE_HOME/vmeval-hf``, else ``~/.cache/vmeval-hf``.

    ``environ``: the variables to read (default: the process environment).
    """
    env = os.environ if environ is None else environ
    if env.get("VMEVAL_CACHE_DIR"):
        return Path(env["VMEVAL_CACHE_DIR"]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "vmeval-hf"
