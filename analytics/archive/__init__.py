"""The activity archive: activity events from the log into Parquet under the lake URL, exactly once."""

from analytics.archive.consumer import ARCHIVE_GROUP, Archiver, ArchiveStats, catch_up
from analytics.archive.lake import Lake
from analytics.lake_files import CorruptLakeFile, LakeError

__all__ = ["ARCHIVE_GROUP", "ArchiveStats", "Archiver", "CorruptLakeFile", "Lake", "LakeError", "catch_up"]
