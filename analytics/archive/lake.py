"""The lake's activity table on any pyarrow file system: atomic file writes, what is already archived,
and reading it back with every file checked.

Layout: ``<lake>/activity/date=YYYY-MM-DD/hour=HH/<name>.parquet`` (``analytics.schema``). One flush of
the archive writes a *group* of files, one per hour its rows fall in, all named by the same log range::

    <topic>.p<partition>.<first offset>-<last offset>.<i>of<n>.parquet      (live events)
    history.<profile>.<content digest>.<i>of<n>.parquet                      (import-history)

Each file is written under a hidden temporary name (``.<name>.tmp``; Spark, DuckDB globs on
``*.parquet`` and pyarrow datasets skip it), made durable, then renamed. A group counts only when all
``n`` of its files are there: a crash part-way through leaves an incomplete group, which the next start
deletes (its offsets were never committed, so the records are read and written again).
"""

from __future__ import annotations

import os
import re
import uuid
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import structlog

from analytics.lake_files import LakeError, checked_footer, is_data
from analytics.schema import ACTIVITY_SCHEMA, ACTIVITY_TABLE, partition_dir

log = structlog.get_logger(__name__)

LIVE_FILE = re.compile(
    r"^(?P<topic>.+)\.p(?P<partition>\d+)\.(?P<first>\d{20})-(?P<last>\d{20})\.(?P<part>\d+)of(?P<parts>\d+)\.parquet$"
)
HISTORY_FILE = re.compile(
    r"^history\.(?P<profile>[a-z0-9_]+)\.(?P<digest>[0-9a-f]+)\.(?P<part>\d+)of(?P<parts>\d+)\.parquet$"
)
TEMP_SUFFIX = ".tmp"
MANY_FILES = 16


def live_file_name(topic: str, partition: int, first: int, last: int, part: int, parts: int) -> str:
    return f"{topic}.p{partition:04d}.{first:020d}-{last:020d}.{part}of{parts}.parquet"


def history_file_name(profile: str, digest: str, part: int, parts: int) -> str:
    return f"history.{profile}.{digest}.{part}of{parts}.parquet"


@dataclass(frozen=True)
class PlannedFile:
    """One file of a group: its rows and the hour they happened in."""

    hour: datetime
    name: str
    table: pa.Table


class Lake:
    """The activity table under ``url`` (``file:///path``, a plain path, ``s3://bucket/path``, ...)."""

    def __init__(self, url: str) -> None:
        try:
            self.fs, root = pafs.FileSystem.from_uri(url)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
            raise LakeError(f"lake URL {url!r} is not a file system pyarrow knows: {exc}") from exc
        self.url = url
        self.root = root.rstrip("/")
        self.table_root = f"{self.root}/{ACTIVITY_TABLE}"
        self._local = isinstance(self.fs, pafs.LocalFileSystem)

    # writing ------------------------------------------------------------------------------------

    def write_group(self, files: Sequence[PlannedFile]) -> list[str]:
        """Write every file of a group durably, then rename them into place; returns the final paths.

        A group of many files (a history import spans thousands of hours) is made durable with two
        ``sync`` calls instead of an ``fsync`` per file and directory (measured: 30 s -> 3 s for 2,700)."""
        many = self._local and len(files) > MANY_FILES
        staged: list[tuple[str, str]] = []
        for planned in files:
            directory = f"{self.table_root}/{partition_dir(planned.hour)}"
            self.fs.create_dir(directory, recursive=True)
            temp = f"{directory}/.{planned.name}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}"
            pq.write_table(planned.table, temp, filesystem=self.fs)
            if not many:
                self._sync(temp)
            staged.append((temp, f"{directory}/{planned.name}"))
        if many:
            os.sync()
        for temp, final in staged:
            self.fs.move(temp, final)
        if many:
            os.sync()
        else:
            for directory in {final.rsplit("/", 1)[0] for _, final in staged}:
                self._sync(directory)
        return [final for _, final in staged]

    def _sync(self, path: str) -> None:
        """fsync a file (durable before its rename) or a directory (the rename durable); on object
        stores the upload completing is the durability."""
        if self._local:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # what is there ------------------------------------------------------------------------------

    def _files(self) -> Iterator[pafs.FileInfo]:
        selector = pafs.FileSelector(self.table_root, recursive=True, allow_not_found=True)
        for info in self.fs.get_file_info(selector):
            if info.type == pafs.FileType.File:
                yield info

    def recover(self, partitions: Collection[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Make ``partitions`` (topic, partition) ready for a new owner: delete their temporary files and
        incomplete groups (left by a crash: their offsets were never committed, so the records are read
        and written again), and return the last offset complete groups hold for each.

        Only the member that owns a partition calls this, once it owns it: the previous owner let it go
        between two batches (or died), so nothing of that partition is being written meanwhile.
        """
        wanted = {(topic, int(partition)) for topic, partition in partitions}
        if not wanted:
            return {}
        groups: dict[tuple[str, int, int, int], list[str]] = defaultdict(list)
        sizes: dict[tuple[str, int, int, int], int] = {}
        for info in self._files():
            name = info.base_name
            temp = name.startswith(".") and name.endswith(TEMP_SUFFIX)
            match = LIVE_FILE.match(name[1:].rsplit(".", 2)[0] if temp else name)
            if match is None or (match["topic"], int(match["partition"])) not in wanted:
                continue  # history imports complete their own groups; other files are not ours
            if temp:
                log.warning("archive: deleting a temporary file left by a crash", path=info.path)
                self.fs.delete_file(info.path)
                continue
            key = (match["topic"], int(match["partition"]), int(match["first"]), int(match["last"]))
            groups[key].append(info.path)
            sizes[key] = int(match["parts"])
        archived: dict[tuple[str, int], int] = {}
        for key, paths in groups.items():
            if len(paths) < sizes[key]:
                log.warning("archive: deleting an incomplete group left by a crash", files=paths)
                for path in paths:
                    self.fs.delete_file(path)
                continue
            topic, partition, _, last = key
            archived[(topic, partition)] = max(archived.get((topic, partition), -1), last)
        return archived

    def has_history(self, profile: str, digest: str) -> bool:
        """Whether a complete group of this import is already in the lake."""
        names = [i.base_name for i in self._files() if i.base_name.startswith(f"history.{profile}.{digest}.")]
        parts = {int(m["parts"]) for n in names if (m := HISTORY_FILE.match(n))}
        return len(parts) == 1 and len(names) == parts.pop()

    # reading ------------------------------------------------------------------------------------

    def parquet_files(self) -> list[str]:
        """Every data file of the table, sorted (hidden and temporary files left out: ``is_data``)."""
        prefix = f"{self.table_root}/"
        return sorted(i.path for i in self._files() if is_data(i.path.removeprefix(prefix)))

    def verify(self) -> list[str]:
        """Check every file's footer and schema; raise ``CorruptLakeFile`` naming the first bad one."""
        paths = self.parquet_files()
        for path in paths:
            checked_footer(path, self.fs)
        return paths

    def dataset(self) -> ds.Dataset:
        """The activity table as one pyarrow dataset (date and hour as partition columns), every file
        checked first: a corrupt file is an error, never silently skipped."""
        paths = self.verify()
        return ds.dataset(
            paths,
            schema=ACTIVITY_SCHEMA.append(pa.field("date", pa.string())).append(pa.field("hour", pa.int32())),
            format="parquet",
            filesystem=self.fs,
            partitioning=ds.partitioning(
                pa.schema([("date", pa.string()), ("hour", pa.int32())]), flavor="hive"
            ),
            partition_base_dir=self.table_root,
        )

    def read(self) -> pa.Table:
        """The whole table (small lakes, tests); the Spark jobs and DuckDB read the files themselves."""
        return self.dataset().to_table()
