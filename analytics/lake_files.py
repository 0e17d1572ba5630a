"""What every reader of the activity table agrees on: which files are data, and the check each file
passes before anything reads it.

The archive (``analytics.archive.lake``, any pyarrow file system) and the Spark jobs' input snapshot
(``analytics.jobs.lake``, local folders) list and check the lake the same way, so a file one of them
refuses the other refuses too, with the same message.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from analytics.schema import ACTIVITY_SCHEMA


class LakeError(RuntimeError):
    """The lake cannot be used as it is (empty, corrupt, wrong schema); the message says what to do."""


class CorruptLakeFile(LakeError):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(
            f"corrupt Parquet file in the lake: {path}: {reason}. Nothing was read; move the file away (or "
            "delete it and re-run the archive or import that wrote it) and try again."
        )
        self.path = path
        self.reason = reason


def is_data(relative: str) -> bool:
    """What Spark and DuckDB count as data: a ``.parquet`` file no part of whose path (relative to the
    table) starts with '.' or '_' (temporary files, staging folders)."""
    return relative.endswith(".parquet") and not any(
        part.startswith((".", "_")) for part in relative.split("/")
    )


def unreadable(path: str, exc: Exception) -> CorruptLakeFile:
    return CorruptLakeFile(path, f"not a readable Parquet file ({exc})")


def checked_footer(path: str, filesystem: pafs.FileSystem | None = None) -> pq.FileMetaData:
    """The file's footer, once it is known to be readable and to hold every activity column;
    ``CorruptLakeFile`` otherwise."""
    try:
        meta = pq.read_metadata(path, filesystem=filesystem)
        names = meta.schema.to_arrow_schema().names
    except (OSError, pa.ArrowException) as exc:
        raise unreadable(path, exc) from exc
    missing = [f.name for f in ACTIVITY_SCHEMA if f.name not in names]
    if missing:
        raise CorruptLakeFile(path, f"not an activity file (columns missing: {', '.join(missing)})")
    return meta
