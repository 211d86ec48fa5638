"""The sandbox: the local Hub-compatible server and an S3 server (moto), both on 127.0.0.1.

Used by ``vmeval-hf sandbox``, ``vmeval-hf demo`` and the tests. The Hub persists to a
folder; moto keeps S3 in memory for the life of the process.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from types import TracebackType

from ..config import DEFAULT_BUCKET, DEFAULT_REGION, Settings
from ..errors import ConfigError
from .hub_server import HubServer

HOST = "127.0.0.1"
# Fixed, obviously fake S3 credentials: moto accepts any, and nothing real must ever be used here.
S3_KEY_ID, S3_SECRET = "sandbox-access-key", "sandbox-secret-key"


def moto_server() -> type:
    """moto's threaded S3 server class; :class:`ConfigError` saying how to install it if missing
    (it comes with the ``sandbox`` extra, not with a plain install)."""
    try:
        from moto.server import ThreadedMotoServer  # start-up: ~0.6 s, and an optional extra
    except ImportError as exc:
        raise ConfigError("the sandbox's S3 server needs moto, which the `sandbox` extra installs: "
                          "pip install 'vmeval-hf[sandbox]' (from a checkout: pip install -e '.[sandbox]')"
                          ) from exc
    return ThreadedMotoServer


class Sandbox:
    """Start both servers; ``env()`` is what a client process needs to use them."""

    def __init__(self, root: str | Path, *, hub_port: int = 0, s3_port: int = 0, token: str | None = None,
                 bucket: str = DEFAULT_BUCKET, repo: str = "sandbox/vmevalkit-questions",
                 results_repo: str = "sandbox/vmevalkit-results") -> None:
        self._moto_class = moto_server()  # before any folder is created
        self.root = Path(root)
        self.token = token or f"hf_sandbox_{secrets.token_hex(12)}"
        self.bucket = bucket
        self.repo = repo
        self.results_repo = results_repo
        self.hub = HubServer(self.root / "hub", token=self.token, host=HOST, port=hub_port)
        self._s3_port = s3_port
        self._moto: object | None = None
        self.s3_url = ""

    def start(self) -> Sandbox:
        # moto serves through werkzeug, which logs every request at INFO
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.hub.start()
        moto = self._moto_class(ip_address=HOST, port=self._s3_port, verbose=False)
        moto.start()
        self._moto = moto
        host, port = moto.get_host_and_port()
        self.s3_url = f"http://{host}:{port}"
        self._create_bucket()
        return self

    def _create_bucket(self) -> None:
        import boto3  # start-up: ~150 ms; only starting the sandbox needs boto3

        client = boto3.client("s3", endpoint_url=self.s3_url, region_name=DEFAULT_REGION,
                              aws_access_key_id=S3_KEY_ID, aws_secret_access_key=S3_SECRET)
        client.create_bucket(Bucket=self.bucket,
                             CreateBucketConfiguration={"LocationConstraint": DEFAULT_REGION})

    def stop(self) -> None:
        if self._moto is not None:
            self._moto.stop()  # type: ignore[attr-defined]
            self._moto = None
        self.hub.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """Environment variables that point the product and the unmodified clients at the sandbox."""
        return {
            "HF_ENDPOINT": self.hub.url,
            "HF_TOKEN": self.token,
            "HF_HUB_DISABLE_XET": "1",
            "HF_UPDATE_DOWNLOAD_COUNTS": "0",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "VMEVAL_HF_REPO": self.repo,
            "VMEVAL_RESULTS_REPO": self.results_repo,
            "S3_BUCKET": self.bucket,
            "AWS_ENDPOINT_URL": self.s3_url,
            "AWS_ACCESS_KEY_ID": S3_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_DEFAULT_REGION": DEFAULT_REGION,
        }

    def settings(self) -> Settings:
        return Settings.from_env(environ=self.env(), dotenv_path=self.root / ".no-dotenv")
