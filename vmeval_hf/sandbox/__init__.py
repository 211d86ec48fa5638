"""Local stand-ins for remote services, for tests and dry runs.

``HubServer`` is a loopback-only HTTP server that the unmodified ``huggingface_hub`` and
``datasets`` clients accept as a Hugging Face Hub: point ``HF_ENDPOINT`` at ``HubServer.url``
and set ``HF_HUB_DISABLE_XET=1`` before importing them.
"""

from __future__ import annotations

from .hub_server import HubServer

__all__ = ["HubServer"]
