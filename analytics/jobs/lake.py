"""The jobs' input: a snapshot of the activity table, checked before Spark sees it.

A run reads exactly the files listed when it started (the archive may add files meanwhile), so the
version derived from their names and sizes names what was really read. Every file's Parquet footer is
checked with pyarrow first: a corrupt or foreign file is a clear message naming it, not a Spark stack
trace halfway through a job.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analytics.lake_files import LakeError, checked_footer, is_data, unreadable
from analytics.schema import ACTIVITY_SCHEMA, ACTIVITY_TABLE

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def lake_path(lake_url: str) -> Path:
    """The folder of a ``file://`` lake URL (or a plain path)."""
    parts = urlsplit(lake_url)
    if parts.scheme in ("", "file"):
        return Path(unquote(parts.path if parts.scheme else lake_url))
    raise LakeError(f"lake_url {lake_url!r}: only file:// lakes (a local or shared folder) are supported")


@dataclass(frozen=True)
class Snapshot:
    """The activity files a run reads, with what the version and the revisions derive from."""

    lake: Path
    files: tuple[Path, ...]
    sizes: tuple[int, ...]
    rows: int
    watermark: datetime  # the newest occurred_at in the input

    @property
    def table_dir(self) -> Path:
        return self.lake / ACTIVITY_TABLE

    def fingerprint(self, *salt: str) -> str:
        """A short hash of the input files (relative names and sizes) and ``salt`` (job, parameters)."""
        digest = hashlib.sha256("\x1f".join(salt).encode())
        for path, size in zip(self.files, self.sizes, strict=True):
            digest.update(f"\x1e{path.relative_to(self.lake)}\x1f{size}".encode())
        return digest.hexdigest()[:16]

    @property
    def revision(self) -> int:
        """Grows with the input: the watermark's second, then the row count (mod 10^6) to order two
        inputs with the same newest event (e.g. an older history imported later)."""
        return int(self.watermark.timestamp()) * 1_000_000 + self.rows % 1_000_000


def _check_footer(path: Path) -> tuple[int, datetime | None]:
    """Rows and newest occurred_at of one file, from its footer; LakeError when it is unusable."""
    meta = checked_footer(str(path))
    schema = meta.schema.to_arrow_schema()
    column = schema.get_field_index("occurred_at")
    newest: datetime | None = None
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(column).statistics
        if stats is None or not stats.has_min_max:
            return meta.num_rows, _newest_by_reading(path)
        top = stats.max if isinstance(stats.max, datetime) else None
        if top is not None and (newest is None or top > newest):
            newest = top
    return meta.num_rows, newest


def _newest_by_reading(path: Path) -> datetime | None:
    try:
        column = pq.read_table(path, columns=["occurred_at"]).column(0)
    except (pa.ArrowException, OSError) as exc:
        raise unreadable(str(path), exc) from exc
    value = pc.max(column).as_py()
    return value if isinstance(value, datetime) else None


def snapshot(lake_url: str) -> Snapshot:
    """List and check the activity files; LakeError for an empty lake or a bad file."""
    lake = lake_path(lake_url)
    base = lake / ACTIVITY_TABLE
    files = (
        sorted(p for p in base.rglob("*.parquet") if p.is_file() and is_data(p.relative_to(base).as_posix()))
        if base.is_dir()
        else []
    )
    if not files:
        raise LakeError(
            f"the lake has no activity yet ({base} has no Parquet files): run the archive "
            "(`emporium analytics archive`) or `emporium analytics import-history` first"
        )
    rows, newest = 0, None
    for path in files:
        count, top = _check_footer(path)
        rows += count
        if top is not None and (newest is None or top > newest):
            newest = top
    if rows == 0 or newest is None:
        raise LakeError(f"the activity files under {base} hold no rows")
    sizes = tuple(p.stat().st_size for p in files)
    return Snapshot(lake=lake, files=tuple(files), sizes=sizes, rows=rows, watermark=newest.astimezone(UTC))


def read_activity(spark: SparkSession, snap: Snapshot) -> DataFrame:
    """The snapshot's files as one DataFrame in ``ACTIVITY_SCHEMA`` (hive partitions ``date``/``hour``
    come along, read with ``basePath``)."""
    from pyspark.sql.types import StructType

    schema = StructType.fromJson(_spark_schema_json())
    return (
        spark.read.schema(schema)
        .option("basePath", str(snap.table_dir))
        .parquet(*(str(p) for p in snap.files))
    )


def _spark_schema_json() -> dict[str, object]:
    """ACTIVITY_SCHEMA in Spark's JSON form, all fields nullable (Spark reads files that way)."""
    kinds = {
        pa.string(): "string",
        pa.timestamp("us", tz="UTC"): "timestamp",
        pa.int32(): "integer",
        pa.decimal128(18, 2): "decimal(18,2)",
    }
    fields = [
        {"name": f.name, "type": kinds[f.type], "nullable": True, "metadata": {}} for f in ACTIVITY_SCHEMA
    ]
    return {"type": "struct", "fields": fields}
