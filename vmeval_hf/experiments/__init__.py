"""Experiments: the outputs and evaluations the team produces, archived to S3 and restored.

:func:`list_experiments` (every experiment, local and archived), :func:`archive_experiment` (a
verified snapshot holds it, the version log says where, then the local files go) and
:func:`restore_experiment` (back into ``data/``, every sha256 checked). The layouts read are in
:mod:`.model`, the archive records in :mod:`.records`; the snapshots are the S3 mirror's
(:func:`vmeval_hf.s3.mirror.mirror_version` with ``incremental=True``).
"""

from __future__ import annotations

from .archive import ArchiveResult, archive_experiment
from .listing import ExperimentInfo, list_experiments
from .restore import RestoreResult, restore_experiment

__all__ = [
    "ArchiveResult",
    "ExperimentInfo",
    "RestoreResult",
    "archive_experiment",
    "list_experiments",
    "restore_experiment",
]
