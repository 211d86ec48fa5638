"""The release's column schema (schema 1), in the three forms the release needs.

One source of truth: the Arrow schema of the shards, the ``datasets`` features
stored in the shards' ``huggingface`` metadata, and the ``dataset_info.features``
YAML of the card are all derived from :data:`COLUMNS`.
"""

from __future__ import annotations

import json
from typing import Any

# (name, kind, nullable); kind is "string", "image" or "binary"
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("id", "string", False),
    ("domain", "string", False),
    ("task_category", "string", True),
    ("difficulty", "string", True),
    ("prompt", "string", False),
    ("first_frame", "image", False),
    ("final_frame", "image", True),
    ("goal", "string", True),
    ("ground_truth_video", "binary", True),
    ("metadata", "string", True),
    ("source_path", "string", False),
)
IMAGE_COLUMNS = tuple(name for name, kind, _ in COLUMNS if kind == "image")
SPLIT = "test"
SCHEMA_VERSION = 1


#: (name, kind, nullable) columns: the question release's, or another release's (the results dataset)
Columns = tuple[tuple[str, str, bool], ...]


def features_dict(columns: Columns = COLUMNS) -> dict[str, Any]:
    """The ``datasets.Features.to_dict()`` form."""
    out: dict[str, Any] = {}
    for name, kind, _ in columns:
        out[name] = {"_type": "Image"} if kind == "image" else {"dtype": kind, "_type": "Value"}
    return out


def features_yaml(columns: Columns = COLUMNS) -> list[dict[str, str]]:
    """The card's ``dataset_info.features`` list."""
    return [{"name": name, "dtype": kind} for name, kind, _ in columns]


def image_type() -> Any:
    """The Arrow type of an image column: the ``datasets`` Image storage struct."""
    import pyarrow as pa  # start-up: ~0.2 s; only the build needs Arrow

    return pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def arrow_schema(columns: Columns = COLUMNS) -> Any:
    """The shards' Arrow schema, carrying the ``datasets`` features; a kind other than ``image`` is a
    ``datasets`` Value dtype (``string``, ``binary``, ``int64``, ``bool``)."""
    import pyarrow as pa  # start-up: ~0.2 s; only the build needs Arrow

    types = {"string": pa.string(), "binary": pa.binary(), "image": image_type(), "int64": pa.int64(),
             "bool": pa.bool_()}
    # Every Arrow field is nullable, as datasets writes them: datasets maps a shard's field to the
    # feature in the ``huggingface`` metadata only if the field equals the feature's own (nullable)
    # field, so a non-nullable first_frame would load as a bare struct, not an Image. The ``nullable``
    # flags in COLUMNS stay the contract that validation enforces.
    fields = [pa.field(name, types[kind], nullable=True) for name, kind, _ in columns]
    hf_meta = json.dumps({"info": {"features": features_dict(columns)}}, separators=(",", ":"))
    return pa.schema(fields, metadata={b"huggingface": hf_meta.encode()})
