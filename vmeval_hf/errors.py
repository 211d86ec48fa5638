"""The one exception tree of vmeval-hf.

Every error the library raises on purpose is a ``VmevalError``. Third-party
errors are translated at one boundary per backend (``huggingface_hub`` errors
in :mod:`vmeval_hf.hub`, botocore errors in :mod:`vmeval_hf.s3.client`) and
raised as one of these types ``from`` the original. Messages say what is wrong
*and what to do next*; context travels as attributes.

::

    VmevalError (.path)
    ├── ConfigError                  a setting is missing or malformed
    ├── ValidationError              the question tree has problems (.problems, .domain, .id)
    ├── BuildError                   the release folder could not be compiled
    ├── VersionLogError              version_log.json, or a shared version record on S3, is corrupt or unwritable (.line, .key)
    ├── VersionConflictError         a version exists with other content (.version, .repo)
    ├── IntegrityError               bytes do not match their recorded sha256 (.key)
    ├── VerifyError                  a published version differs from its manifest (.mismatches, .version)
    ├── LocalFileError               a local file or folder cannot be read or written (disk full, permissions)
    └── RemoteError                  a remote side failed (.side = "hub" | "s3")
        ├── HubError                 (.repo, .version, .status: the HTTP status, if any)
        │   ├── HubAuthError         token missing or refused
        │   ├── HubNotFoundError     repo / revision / file not found
        │   └── HubConflictError     concurrent commit or tag race
        └── S3Error                  (.bucket, .key)
            ├── S3AuthError          no credentials / access denied
            ├── S3BucketNotFoundError
            ├── S3ConflictError      the prefix holds another version, or an object differs (.uri, .keys, .version)
            └── S3UnreachableError   endpoint unreachable or throttled past retries

Each class declares its context attributes in ``context`` (added to its parents'); they are
keyword arguments of the constructor, ``None`` when not given, and any other keyword is a
``TypeError``, so a caller reads ``exc.status`` and never has to guess with ``getattr``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class VmevalError(Exception):
    """Root of every error vmeval-hf raises on purpose."""

    #: Process exit code the CLI uses for this error.
    exit_code: int = 1
    #: Context attributes this class adds to its parents' (each ``None`` unless given).
    context: ClassVar[tuple[str, ...]] = ("path",)

    path: Any

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        fields = self.context_fields()
        unknown = sorted(set(context) - set(fields))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no context attribute {', '.join(unknown)} "
                            f"(declared: {', '.join(fields)})")
        for name in fields:
            setattr(self, name, context.get(name))

    @classmethod
    def context_fields(cls) -> tuple[str, ...]:
        """Every context attribute of this class: its own ``context`` and its parents'."""
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            for name in vars(klass).get("context", ()):
                if name not in names:
                    names.append(name)
        return tuple(names)

    def __str__(self) -> str:
        return self.message


class ConfigError(VmevalError):
    """A setting is missing or malformed."""


class ValidationError(VmevalError):
    """The question tree failed validation; ``problems`` lists every finding."""

    context = ("problems", "domain", "id")
    domain: str | None
    id: str | None

    def __init__(self, message: str, problems: list[Any] | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.problems: list[Any] = list(problems or [])


class BuildError(VmevalError):
    """The release folder could not be compiled."""


class VersionLogError(VmevalError):
    """The version log (or a shared version record on S3: ``key``) is corrupt, hand-edited into an
    invalid shape, or unwritable."""

    context = ("line", "key")
    line: int | None
    key: str | None


class VersionConflictError(VmevalError):
    """A version label already exists with different content."""

    context = ("version", "repo")
    version: str | None
    repo: str | None


class IntegrityError(VmevalError):
    """Bytes do not match the sha256 recorded for them."""

    context = ("key",)
    key: str | None


class VerifyError(VmevalError):
    """A published version differs from its release manifest; ``mismatches`` lists each difference."""

    context = ("mismatches", "version")
    version: str | None

    def __init__(self, message: str, mismatches: list[Any] | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.mismatches: list[Any] = list(mismatches or [])


class LocalFileError(VmevalError):
    """A local file or folder cannot be read or written (a full disk, a permission, a path that is
    a file where a folder is needed): a problem on this machine, never reported as a remote outage."""


class RemoteError(VmevalError):
    """A remote side (Hub or S3) failed."""

    side = "remote"


class HubError(RemoteError):
    """The Hub refused or failed a request."""

    side = "hub"
    context = ("repo", "version", "status")
    repo: str | None
    version: str | None
    status: int | None


class HubAuthError(HubError):
    """The token is missing or refused."""


class HubNotFoundError(HubError):
    """The repo, revision or file does not exist."""


class HubConflictError(HubError):
    """A concurrent commit or tag race."""


class S3Error(RemoteError):
    """S3 refused or failed a request."""

    side = "s3"
    context = ("bucket", "key")
    bucket: str | None
    key: str | None


class S3AuthError(S3Error):
    """No credentials, or access denied."""


class S3BucketNotFoundError(S3Error):
    """The bucket does not exist."""


class S3ConflictError(S3Error):
    """The prefix holds another version, or an object differs from what would be written."""

    context = ("uri", "keys", "version")
    uri: str | None
    keys: list[str] | None
    version: str | None


class S3UnreachableError(S3Error):
    """The endpoint is unreachable, or throttled past the retries."""
