"""Pytest plugin: one sandbox Hub for the whole session, and the client settings that reach it.

``pytest_configure`` starts the :class:`~vmeval_hf.sandbox.HubServer` and exports ``HF_ENDPOINT``
and friends *before* any test module imports ``huggingface_hub`` or ``datasets``: both read the
endpoint at import time, so patching it later does not reach their internals.

Fixtures: ``hub_server`` (session), ``hub_repo`` (a fresh, not yet created dataset repo id) and
``fresh_hf_cache`` (empty Hugging Face caches for one test).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmeval_hf.sandbox import HubServer

HUB_TOKEN = "hf_vmeval_test_token_0123456789"

_state: dict[str, object] = {}


def pytest_configure(config: pytest.Config) -> None:
    if "hub_server" in _state:
        return
    clients = sorted(m for m in ("huggingface_hub", "datasets") if m in sys.modules)
    if clients:
        raise pytest.UsageError(
            f"{', '.join(clients)} was imported before tests.support.hub configured HF_ENDPOINT; "
            "list tests.support.hub first in pytest_plugins and import the clients lazily"
        )
    root = Path(tempfile.mkdtemp(prefix="vmeval-hub-"))
    server = HubServer(root / "storage", token=HUB_TOKEN).start()
    home = root / "hf-home"
    os.environ.update({
        "HF_ENDPOINT": server.url,
        "HF_TOKEN": HUB_TOKEN,
        "HF_HUB_DISABLE_XET": "1",
        "HF_UPDATE_DOWNLOAD_COUNTS": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_DATASETS_CACHE": str(home / "datasets"),
    })
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN_PATH"):
        os.environ.pop(var, None)
    _state.update(hub_server=server, root=root)


def pytest_unconfigure(config: pytest.Config) -> None:
    server = _state.pop("hub_server", None)
    root = _state.pop("root", None)
    if isinstance(server, HubServer):
        server.stop()
    if isinstance(root, Path):
        shutil.rmtree(root, ignore_errors=True)


def disable_parquet_export() -> None:
    """Keep ``datasets`` from asking ``datasets-server.<endpoint host>`` on main/None loads.

    That lookup would send a DNS query for ``datasets-server.127.0.0.1`` to the real resolver.
    Called lazily, because importing ``datasets`` must wait until HF_ENDPOINT is set.
    """
    import datasets.config

    datasets.config.USE_PARQUET_EXPORT = False
    datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = False


@pytest.fixture(scope="session")
def hub_server() -> HubServer:
    """The session's sandbox Hub (``HF_ENDPOINT`` points at it; token ``HUB_TOKEN``)."""
    server = _state.get("hub_server")
    assert isinstance(server, HubServer), "tests.support.hub was not configured as a plugin"
    return server


@pytest.fixture
def hub_repo(hub_server: HubServer) -> str:
    """A unique dataset repo id on the sandbox Hub; not created yet."""
    return f"test-org/repo-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def fresh_hf_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Empty Hugging Face caches (hub, datasets) for one test; yields the new HF_HOME."""
    home = tmp_path / "hf-home"
    hub_cache, ds_cache = home / "hub", home / "datasets"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(ds_cache))
    # Both libraries copy these into module constants at import time.
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import constants

        monkeypatch.setattr(constants, "HF_HOME", str(home))
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
        monkeypatch.setattr(constants, "HUGGINGFACE_HUB_CACHE", str(hub_cache))
        monkeypatch.setattr(constants, "HF_ASSETS_CACHE", str(home / "assets"))
    if "datasets" in sys.modules:
        import datasets.config as dconfig

        downloads = ds_cache / dconfig.DOWNLOADED_DATASETS_DIR
        monkeypatch.setattr(dconfig, "HF_CACHE_HOME", str(home))
        monkeypatch.setattr(dconfig, "HF_DATASETS_CACHE", ds_cache)
        monkeypatch.setattr(dconfig, "DOWNLOADED_DATASETS_PATH", downloads)
        monkeypatch.setattr(dconfig, "EXTRACTED_DATASETS_PATH", downloads / dconfig.EXTRACTED_DATASETS_DIR)
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import HfFileSystem

        HfFileSystem.clear_instance_cache()  # its directory listings would outlive the cache
    yield home
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import HfFileSystem

        HfFileSystem.clear_instance_cache()
