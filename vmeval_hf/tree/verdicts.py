"""Which frames have passed the pixel check: a local cache keyed by the sha256 of their bytes.

A verdict for given bytes never changes, so a frame whose digest is here is not inflated
again (:func:`~vmeval_hf.tree.png.pixel_problem`): re-validating or re-publishing an unchanged
tree only reads and hashes it. The key is the content, never a path, size or mtime, so a
frame edited in place is checked again whatever its size and mtime say.

Only passes are kept, in a :class:`~vmeval_hf._shared.digest_cache.DigestCache` (an SQLite file
in the user cache folder, :func:`~vmeval_hf.config.default_cache_dir`) named for
:data:`CHECK_VERSION` (a change to what the check accepts takes a new file, so two vmeval-hf
versions never share verdicts); see that module for concurrency and damage. Damage cannot make a
bad frame pass: a row is a 32-byte digest, and a damaged digest names no frame.
"""

from __future__ import annotations

from pathlib import Path

from .._shared.digest_cache import DigestCache

#: what the pixel check accepts, as a number: raise it whenever png.py accepts less or more
CHECK_VERSION = 1


class Verdicts(DigestCache):
    """The digests of frames known to pass (see the module docstring).

    ``folder``: the cache folder (the file inside is ``png-verdicts-v<CHECK_VERSION>.sqlite3``);
    None: no cache, every frame is checked.
    """

    def __init__(self, folder: str | Path | None) -> None:
        super().__init__(folder, f"png-verdicts-v{CHECK_VERSION}", "frame check cache", "checking every frame")
