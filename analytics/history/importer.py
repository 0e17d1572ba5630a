"""``emporium analytics import-history``: historical sales files into the lake's activity table.

The lines are read and mapped by the profile's module (``online_retail``, ``instacart``); every line
that does not parse is rejected with its number and reason while the others go through. The rows are
written as one file group named by the profile and a digest of the input's bytes, so importing the same
content again writes nothing (and an import cut short is completed by running it again: the same names
are written over).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from tqdm import tqdm

from analytics.archive.lake import Lake, PlannedFile, history_file_name
from analytics.archive.rows import split_by_hour
from analytics.history import instacart, online_retail
from analytics.history.records import FileError, ImportReport, LineError, SaleColumns, Skip

PROFILES: Final = (online_retail.PROFILE, instacart.PROFILE)
DIGEST_CHARS = 32

Line = dict[str, str | None]


def input_files(path: Path, profile: str) -> list[Path]:
    """The files an import of ``path`` reads, in a fixed order; FileError if one is missing."""
    if profile == online_retail.PROFILE:
        if not path.is_file():
            raise FileError(f"{path} is not a file (online_retail takes the CSV of invoice lines)")
        return [path]
    if profile == instacart.PROFILE:
        if not path.is_dir():
            raise FileError(f"{path} is not a directory (instacart takes the folder of its CSV files)")
        needed = [instacart.ORDERS_FILE, instacart.ORDER_LINE_FILES[0], *instacart.CATALOG_FILES]
        missing = [name for name in needed if not (path / name).is_file()]
        if missing:
            raise FileError(f"{path} lacks {', '.join(missing)}")
        optional = [path / name for name in instacart.ORDER_LINE_FILES[1:] if (path / name).is_file()]
        return [path / name for name in needed] + optional
    raise FileError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")


def content_digest(profile: str, files: list[Path]) -> str:
    digest = hashlib.sha256(profile.encode())
    for file in files:
        digest.update(file.name.encode() + b"\0")
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:DIGEST_CHARS]


def _lines(file: Path, required: tuple[str, ...], bar: tqdm[object] | None) -> Iterator[tuple[int, Line]]:
    """(line number, fields) of a CSV file with a header; FileError when a required column is missing."""
    with file.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.DictReader(handle)
        columns = [name.strip() for name in reader.fieldnames or ()]
        missing = [name for name in required if name not in columns]
        if missing:
            raise FileError(f"{file.name}: no column {', '.join(missing)} (columns: {', '.join(columns)})")
        reader.fieldnames = columns
        for fields in reader:
            if bar is not None:
                bar.update()
            yield reader.line_num, fields


def _count_lines(files: list[Path]) -> int:
    total = 0
    for file in files:
        with file.open("rb") as handle:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    return total


def import_history(path: Path, profile: str, lake_url: str, *, progress: bool = False) -> ImportReport:
    """Import ``path`` as ``profile`` into the lake at ``lake_url``; FileError when it cannot start."""
    files = input_files(path, profile)
    report = ImportReport(profile=profile, digest=content_digest(profile, files))
    lake = Lake(lake_url)
    if lake.has_history(profile, report.digest):
        report.already_imported = True
        return report
    bar = tqdm(total=_count_lines(files), unit="line", desc=f"import {profile}") if progress else None
    try:
        rows = SaleColumns(profile)
        reader = _read_online_retail if profile == online_retail.PROFILE else _read_instacart
        reader(files, rows, report, bar)
    finally:
        if bar is not None:
            bar.close()
    hours = split_by_hour(rows.to_table())
    planned = [
        PlannedFile(hour, history_file_name(profile, report.digest, n, len(hours)), table)
        for n, (hour, table) in enumerate(hours, start=1)
    ]
    if planned:
        lake.write_group(planned)
    report.files = len(planned)
    return report


def _read_online_retail(
    files: list[Path], rows: SaleColumns, report: ImportReport, bar: tqdm[object] | None
) -> None:
    (file,) = files
    for number, fields in _lines(file, online_retail.COLUMNS, bar):
        try:
            sale = online_retail.map_line(fields, number)
        except LineError as exc:
            report.reject(number, str(exc), file.name)
            continue
        if isinstance(sale, Skip):
            report.skip(sale.reason)
        else:
            rows.add(sale)
            report.accepted += 1


def _read_instacart(
    files: list[Path], rows: SaleColumns, report: ImportReport, bar: tqdm[object] | None
) -> None:
    folder = files[0].parent
    orders: dict[str, instacart.Order] = {}
    orders_file = folder / instacart.ORDERS_FILE
    for number, fields in _lines(
        orders_file, ("order_id", "user_id", "order_number", "order_hour_of_day"), bar
    ):
        try:
            order_id, order = instacart.map_order(fields)
        except LineError as exc:
            report.reject(number, str(exc), orders_file.name)
            continue
        orders[order_id] = order
    catalog = [
        list(fields for _, fields in _lines(folder / name, (), bar)) for name in instacart.CATALOG_FILES
    ]
    category = instacart.categories(*catalog)
    times = instacart.order_times(orders)
    for file in files:
        if file.name not in instacart.ORDER_LINE_FILES:
            continue
        for number, fields in _lines(file, ("order_id", "product_id", "add_to_cart_order"), bar):
            try:
                sale = instacart.map_line(fields, orders=orders, times=times, category=category)
            except LineError as exc:
                report.reject(number, str(exc), file.name)
                continue
            rows.add(sale)
            report.accepted += 1
