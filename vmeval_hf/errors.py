"""The one exception tree of vmeval-hf.

Every error the library raises on purpose is a ``VmevalError``. Third-party
errors are translated at one boundary per backend (``huggingface_hub`` errors
in :mod:`vmeval_hf.hub`, botocore errors in :mod:`vmeval_hf.s3client`) and
raised as one of these types ``from`` the original. Messages say what is wrong
*and what to do next*; context travels as attributes.

::

    VmevalError
    ├── ConfigError                  a setting is missing or malformed
    ├── ValidationError              the question tree has problems (.problems)
    ├── BuildError                   the release folder could not be compiled
    ├── VersionLogError              version_log.json is corrupt or unwritable (.path, .line)
    ├── VersionConflictError         a version exists with other content (.version)
    ├── IntegrityError               bytes do not match their recorded sha256 (.path, .key)
    ├── VerifyError                  a published version differs from its manifest (.mismatches)
    └── RemoteError                  a remote side failed (.side = "hub" | "s3")
        ├── HubError
        │   ├── HubAuthError         token missing or refused
        │   ├── HubNotFoundError     repo / revision / file not found
        │   └── HubConflictError     concurrent commit or tag race
        └── S3Error
            ├── S3AuthError          no credentials / access denied
            ├── S3BucketNotFoundError
            ├── S3ConflictError      the prefix holds another version, or an object differs (.key)
            └── S3UnreachableError   endpoint unreachable or throttled past retries
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class VmevalError(Exception):
    """Root of every error vmeval-hf raises on purpose."""

    #: Process exit code the CLI uses for this error.
    exit_code: int = 1

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        for key, value in context.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        return self.message


class ConfigError(VmevalError):
    """A setting is missing or malformed."""


class ValidationError(VmevalError):
    """The question tree failed validation; ``problems`` lists every finding."""

    def __init__(self, message: str, problems: list[Any] | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.problems = list(problems or [])


class BuildError(VmevalError):
    """The release folder could not be compiled."""


class VersionLogError(VmevalError):
    """The version log is corrupt, hand-edited into an invalid shape, or unwritable."""

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None) -> None:
        super().__init__(message, path=path, line=line)


class VersionConflictError(VmevalError):
    """A version label already exists with different content."""


class IntegrityError(VmevalError):
    """Bytes do not match the sha256 recorded for them."""


class VerifyError(VmevalError):
    """A published version differs from its release manifest; ``mismatches`` lists each difference."""

    def __init__(self, message: str, mismatches: list[Any] | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.mismatches = list(mismatches or [])


class RemoteError(VmevalError):
    """A remote side (Hub or S3) failed."""

    side = "remote"


class HubError(RemoteError):
    side = "hub"


class HubAuthError(HubError):
    pass


class HubNotFoundError(HubError):
    pass


class HubConflictError(HubError):
    pass


class S3Error(RemoteError):
    side = "s3"


class S3AuthError(S3Error):
    pass


class S3BucketNotFoundError(S3Error):
    pass


class S3ConflictError(S3Error):
    pass


class S3UnreachableError(S3Error):
    pass
