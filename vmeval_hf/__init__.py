"""vmeval-hf: package, version and ship VMEvalKit benchmark datasets.

Public API (heavy modules are imported lazily, so ``import vmeval_hf`` stays fast)::

    validate_tree, scan_questions, write_manifest, check_manifest   question tree
    create_dataset                                                  generators
    build_release                                                   Parquet + card
    publish_version, verify_version, pull_version                   the release flow
    sync_data_tree                                                  the data tree alone to S3
    diff_versions                                                   what changed between two versions
    load_version                                                    a version as datasets.load_dataset gives it
    list_versions, find_version, sync_versions                      versions from any machine (local + S3 + Hub)
    validate_results, build_results, publish_results, show_results  the results dataset (leaderboard)
    archive_experiment, restore_experiment, list_experiments        experiments: archived to S3, restored
    sync_to_s3                                                      seed-compatible S3 mirror
    log_version, get_latest, print_summary, load_log, save_log      seed-compatible version log
    VersionLog, next_version                                        the version log itself
    Settings, VmevalError and its subclasses
"""

from __future__ import annotations

import importlib
from typing import Any

from ._shared.meta import __version__
from .config import Settings
from .errors import (
    BuildError,
    ConfigError,
    HubAuthError,
    HubConflictError,
    HubError,
    HubNotFoundError,
    IntegrityError,
    LocalFileError,
    RemoteError,
    S3AuthError,
    S3BucketNotFoundError,
    S3ConflictError,
    S3Error,
    S3UnreachableError,
    ValidationError,
    VerifyError,
    VersionConflictError,
    VersionLogError,
    VmevalError,
)

_LAZY = {
    "validate_tree": "tree.validate",
    "scan_questions": "tree.validate",
    "write_manifest": "tree.manifest_sync",
    "check_manifest": "tree.manifest_sync",
    "Question": "tree.model",
    "create_dataset": "generate",
    "build_release": "release.build",
    "publish_version": "publish",
    "verify_version": "publish",
    "pull_version": "publish",
    "sync_data_tree": "publish",
    "diff_versions": "diff",
    "load_version": "load",
    "list_versions": "versions.lookup",
    "find_version": "versions.lookup",
    "sync_versions": "versions.sync",
    "validate_results": "results.scan",
    "build_results": "results.build",
    "publish_results": "results.publish",
    "show_results": "results.leaderboard",
    "archive_experiment": "experiments",
    "restore_experiment": "experiments",
    "list_experiments": "experiments",
    "sync_to_s3": "s3.mirror",
    "VersionLog": "versions",
    "next_version": "versions",
    "log_version": "versions",
    "get_latest": "versions",
    "print_summary": "versions",
    "load_log": "versions",
    "save_log": "versions",
}

__all__ = [
    "__version__",
    "Settings",
    "VmevalError",
    "ConfigError",
    "ValidationError",
    "BuildError",
    "VersionLogError",
    "VersionConflictError",
    "IntegrityError",
    "VerifyError",
    "LocalFileError",
    "RemoteError",
    "HubError",
    "HubAuthError",
    "HubNotFoundError",
    "HubConflictError",
    "S3Error",
    "S3AuthError",
    "S3BucketNotFoundError",
    "S3ConflictError",
    "S3UnreachableError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vmeval_hf' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
