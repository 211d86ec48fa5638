"""The version log: every published version, with both URIs, sizes, counts and content hashes.

:mod:`.log` is the local file ``data/data_logging/version_log.json`` (the seed's format and API);
:mod:`.remote` the shared records on S3 (one put-once object per version record); :mod:`.hub_tags`
the versions the Hub's tags alone describe; :mod:`.lookup` merges them (``list_versions``,
``find_version``) and :mod:`.sync` rebuilds the local log from them (``sync_versions``). Those
are imported from their modules, not here: they bring the S3 and Hub clients.
"""

from __future__ import annotations

from .._shared.labels import numeric_key, validate_label
from .log import (
    ARCHIVE_KIND,
    DEFAULT_LOG_PATH,
    RESULTS_KIND,
    SCHEMA,
    VersionEntry,
    VersionLog,
    complete_entry,
    format_summary,
    get_latest,
    is_question_version,
    is_results,
    load_log,
    log_version,
    next_version,
    print_summary,
    resolve_log_path,
    save_log,
)

__all__ = [
    "ARCHIVE_KIND",
    "DEFAULT_LOG_PATH",
    "RESULTS_KIND",
    "SCHEMA",
    "VersionEntry",
    "VersionLog",
    "complete_entry",
    "format_summary",
    "get_latest",
    "is_question_version",
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
