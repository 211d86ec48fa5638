"""What makes two version entries "the same version": their content, not their bookkeeping.

Two entries for one label are the same when they name the same content: the release's
``content_sha256`` (a question version), or the ``mirror_manifest_sha256`` of a data-tree mirror
(``vmeval-hf sync --log``). Timestamps, sizes and the S3 date prefix may differ between two
honest publishers of the same content; the content may not. Entries from the seed's API carry
neither hash; for them the S3 and Hub locations stand in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def identity(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    """The part of ``entry`` two copies of one version must agree on."""
    hashes = (entry.get("content_sha256"), entry.get("mirror_manifest_sha256"))
    if any(hashes):
        return ("content", *hashes)
    return ("location", entry.get("s3_uri"), entry.get("hf_commit"))


def same_content(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether ``a`` and ``b`` describe the same content (see the module docstring). When both
    record the whole release's hash (``release_sha256``: card, shards and sources), it must
    agree too: the same questions built into other files are another release."""
    ra, rb = a.get("release_sha256"), b.get("release_sha256")
    return identity(a) == identity(b) and not (ra and rb and ra != rb)


def describe(entry: Mapping[str, Any]) -> str:
    """A short name for ``entry``'s content, for messages: ``content sha256:0123456789ab``."""
    if entry.get("content_sha256"):
        return f"content sha256:{str(entry['content_sha256'])[:12]}"
    if entry.get("mirror_manifest_sha256"):
        return f"data-tree mirror sha256:{str(entry['mirror_manifest_sha256'])[:12]}"
    where = entry.get("s3_uri") or entry.get("hf_commit") or "no location"
    return f"no content hash ({where})"
