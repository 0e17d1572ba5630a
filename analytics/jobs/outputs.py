"""Versioned job outputs under ``<lake>/outputs/<job>/<version>/``, written atomically.

A run writes every table into a hidden staging folder, fsyncs it, adds ``_MANIFEST.json`` and renames the
folder to its version: readers (and a re-run) see a whole version or none. ``LATEST`` names the newest
version and is replaced by rename too. ``_PUBLISHED`` is added once the version's events are on the log,
so a re-run of the same input publishes nothing again, and a run killed between the rename and the
marker publishes on the next run (the same deterministic events, which projectors drop as repeats).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

MANIFEST = "_MANIFEST.json"
PUBLISHED = "_PUBLISHED"
LATEST = "LATEST"


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with tmp.open("w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


class JobOutputs:
    """The versions of one job's outputs."""

    def __init__(self, lake: Path, job: str) -> None:
        self.root = lake / "outputs" / job
        self.job = job

    def path(self, version: str) -> Path:
        return self.root / version

    def exists(self, version: str) -> bool:
        return (self.path(version) / MANIFEST).is_file()

    def is_published(self, version: str) -> bool:
        return (self.path(version) / PUBLISHED).is_file()

    def staging(self, version: str) -> Path:
        """A fresh hidden folder to write a version into (leftovers of killed runs are removed)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for old in self.root.glob(f".staging-{version}-*"):
            shutil.rmtree(old, ignore_errors=True)
        folder = self.root / f".staging-{version}-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        return folder

    def commit(self, staging: Path, version: str, manifest: dict[str, Any]) -> Path:
        """Make ``staging`` the durable ``version``; when another run got there first, keep theirs."""
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
        _fsync_tree(staging)
        final = self.path(version)
        try:
            staging.rename(final)
        except OSError:
            if not self.exists(version):
                raise
            shutil.rmtree(staging, ignore_errors=True)
        self._fsync_root()
        _write_atomically(self.root / LATEST, version + "\n")
        return final

    def mark_published(self, version: str) -> None:
        _write_atomically(self.path(version) / PUBLISHED, "published\n")

    def latest(self) -> str | None:
        try:
            return (self.root / LATEST).read_text().strip() or None
        except FileNotFoundError:
            return None

    def manifest(self, version: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads((self.path(version) / MANIFEST).read_text())
        return result

    def tables(self, version: str) -> list[str]:
        return sorted(
            p.name for p in self.path(version).iterdir() if p.is_dir() and not p.name.startswith("_")
        )

    def read(self, version: str, table: str) -> pa.Table:
        """One output table as pyarrow reads it (pandas, DuckDB: ``<version>/<table>/*.parquet``)."""
        return ds.dataset(self.path(version) / table, format="parquet").to_table()

    def _fsync_root(self) -> None:
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
