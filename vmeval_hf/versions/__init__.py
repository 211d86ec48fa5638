"""The version log: every published version, with both URIs, sizes, counts and content hashes.

:mod:`.log` is the local file ``data/data_logging/version_log.json`` (the seed's format and API).
"""

from __future__ import annotations

from .._shared.labels import numeric_key, validate_label
from .log import (
    DEFAULT_LOG_PATH,
    RESULTS_KIND,
    SCHEMA,
    VersionEntry,
    VersionLog,
    format_summary,
    get_latest,
    is_results,
    load_log,
    log_version,
    next_version,
    print_summary,
    resolve_log_path,
    save_log,
)

__all__ = [
    "DEFAULT_LOG_PATH",
    "RESULTS_KIND",
    "SCHEMA",
    "VersionEntry",
    "VersionLog",
    "format_summary",
    "get_latest",
    "is_results",
    "load_log",
    "log_version",
    "next_version",
    "numeric_key",
    "print_summary",
    "resolve_log_path",
    "save_log",
    "validate_label",
]
