"""Stock feeds: a supplier's warehouse quantities without a catalog (``POST /v1/suppliers/{id}/stock``,
``emporium stock import``).

Rows ``sku, warehouse, quantity`` as CSV, NDJSON or a JSON array (gzip optional) are read by the same
streaming ``FeedReader`` as catalog feeds, checked line by line, scoped to the sending supplier (a feed can
only ever name its own supplier's stock) and handed in batches to the inventory's ``WarehouseStockWriter``,
which says per row whether it changed anything or refuses it (a quantity that would put on-hand below
what is held and sold). The report has the catalog feeds' shape; ``removed`` stays 0.

The worker thread reads and checks batch N+1 while batch N is written. Each row sets one warehouse's
quantity; the SKU's other warehouses keep theirs. A (sku, warehouse) named twice is rejected after its
first line, so the order of a feed's rows does not matter: rows are written per SKU (a SKU's rows in
one write, one stock change), whether the feed lists them per SKU (written batch by batch, as read) or
one warehouse after the other (gathered up to ``group_rows`` first: each row would otherwise be a write
and an event of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import groupby
from typing import IO, Annotated, Any

import msgspec

from ingest.errors import ImportStop, ImportStopped, NotFound, stop_reason
from ingest.model import FeedReport, FeedStatus
from ingest.parsing import FeedError, FeedFormat, FeedLimits, FeedReader, LineError, ReadStopped
from ingest.reports import finish_report
from ingest.store import IngestStore
from ingest.validation import MAX_QUANTITY, MAX_REF_LENGTH, Quantity, Warehouse, reason_of
from kernel.contracts.identifiers import scoped_sku
from kernel.contracts.stock import WarehouseQuantity, WarehouseStockWriter

STOCK_PROFILE = "stock"  # the report's ``profile``: a stock feed is a feed of its own kind
STOCK_COLUMNS = ("sku", "warehouse", "quantity")
DEFAULT_BATCH_ROWS = 5000
# Rows gathered before they are written per SKU: a feed listing one warehouse after the other names a
# SKU again only a warehouse later. Bounded (the duplicate check keeps a key per row of the feed anyway).
DEFAULT_GROUP_ROWS = 250_000
_MAX_WAREHOUSE_LENGTH = 64
_MAX_QUANTITY_DIGITS = len(str(MAX_QUANTITY))


class StockRow(msgspec.Struct, forbid_unknown_fields=False):
    sku: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_REF_LENGTH)]
    warehouse: Warehouse
    quantity: Quantity


def _checked(fields: dict[str, Any]) -> tuple[str, str, int]:
    """(sku, warehouse, quantity) of one line, or RowRejected-like ValidationError with a reason.

    The common line (strings, or an int quantity) is checked by hand: a stock row is three fields, and
    msgspec's conversion of a whole dict costs more than the rest of the line's way to the database."""
    sku, warehouse, quantity = fields.get("sku"), fields.get("warehouse"), fields.get("quantity")
    if sku.__class__ is str and warehouse.__class__ is str:
        sku, warehouse = sku.strip(), warehouse.strip()
        if quantity.__class__ is str:
            digits = quantity.strip()
            if digits.isascii() and digits.isdigit() and len(digits) <= _MAX_QUANTITY_DIGITS:
                quantity = int(digits)
        if (
            quantity.__class__ is int
            and 0 <= quantity <= MAX_QUANTITY
            and 0 < len(sku) <= MAX_REF_LENGTH
            and 0 < len(warehouse) <= _MAX_WAREHOUSE_LENGTH
        ):
            return sku, warehouse, quantity
    row = msgspec.convert(_stripped(fields), StockRow, strict=False)  # the reason of what is wrong
    return row.sku, row.warehouse, row.quantity


class _Batch:
    """One batch of checked rows (built in a worker thread)."""

    __slots__ = ("errors", "exhausted", "lines", "rows")

    def __init__(self) -> None:
        self.rows: list[WarehouseQuantity] = []
        self.lines: list[int] = []
        self.errors: list[LineError] = []
        self.exhausted = False


def _stripped(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.strip() if isinstance(v, str) else v for k, v in row.items()}


def _prepare_batch(
    records: Iterator[tuple[int, dict[str, Any]] | LineError],
    supplier_id: str,
    seen: dict[tuple[str, str], int],
    size: int,
) -> _Batch:
    batch = _Batch()
    for _ in range(size):
        record = next(records, None)
        if record is None:
            batch.exhausted = True
            break
        if isinstance(record, LineError):
            batch.errors.append(record)
            continue
        line, fields = record
        try:
            sku, warehouse, quantity = _checked(fields)
        except msgspec.ValidationError as exc:
            batch.errors.append(LineError(line, reason_of(exc)))
            continue
        first = seen.setdefault((sku, warehouse), line)
        if first != line:
            reason = f"duplicate row for sku {sku!r} in warehouse {warehouse!r} (first at line {first})"
            batch.errors.append(LineError(line, reason))
            continue
        batch.rows.append(WarehouseQuantity(scoped_sku(supplier_id, sku), warehouse, quantity))
        batch.lines.append(line)
    return batch


def _grouped_by_sku(rows: Sequence[WarehouseQuantity]) -> bool:
    """Whether ``rows`` come SKU by SKU, several per SKU (a feed grouped by SKU: waiting for more rows
    gains nothing). Rows of distinct SKUs may be a feed listed warehouse after warehouse."""
    skus = [row.sku for row in rows]
    distinct = len(set(skus))
    return distinct < len(skus) and sum(1 for _ in groupby(skus)) == distinct


class _Group:
    """Checked rows gathered over batches, handed to the writer in chunks of whole SKUs: a SKU's rows
    gathered so far are brought together (in the order SKUs first appeared) unless they already are."""

    def __init__(self) -> None:
        self.rows: list[WarehouseQuantity] = []
        self.lines: list[int] = []
        self.errors: list[LineError] = []

    def add(self, batch: _Batch) -> None:
        self.rows += batch.rows
        self.lines += batch.lines
        self.errors += batch.errors

    def chunks(self, size: int) -> Iterator[tuple[list[WarehouseQuantity], list[int]]]:
        rows, lines = self.rows, self.lines
        skus = [row.sku for row in rows]
        if len(set(skus)) != sum(1 for _ in groupby(skus)):  # some SKU's rows lie apart
            by_sku: dict[str, list[int]] = {}
            for i, sku in enumerate(skus):
                indices = by_sku.get(sku)
                if indices is None:
                    by_sku[sku] = [i]
                else:
                    indices.append(i)
            order = [i for indices in by_sku.values() for i in indices]
            rows, lines, skus = [rows[i] for i in order], [lines[i] for i in order], [skus[i] for i in order]
        start = 0
        while start < len(rows):
            end = min(start + size, len(rows))
            while end < len(rows) and skus[end] == skus[end - 1]:  # a SKU's rows stay in one chunk
                end += 1
            yield rows[start:end], lines[start:end]
            start = end


def _check_columns(columns: Sequence[str] | None) -> None:
    missing = [c for c in STOCK_COLUMNS if columns is not None and c not in columns]
    if missing:
        raise FeedError(
            f"line 1: a stock feed needs columns {', '.join(STOCK_COLUMNS)}; missing {', '.join(missing)}"
        )


class StockFeedService:
    def __init__(
        self,
        store: IngestStore,
        writer: WarehouseStockWriter,
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        group_rows: int = DEFAULT_GROUP_ROWS,
        on_report: Callable[[FeedReport], None] | None = None,
    ) -> None:
        self.store, self.writer, self.batch_rows, self._on_report = store, writer, batch_rows, on_report
        self.group_rows = group_rows

    async def import_stock(
        self,
        supplier_id: str,
        source: IO[bytes],
        *,
        fmt: FeedFormat,
        on_read: Callable[[int], None] | None = None,
        limits: FeedLimits = FeedLimits(),
        stop: ImportStop | None = None,
    ) -> FeedReport:
        """Import one stock feed body. Raises FeedError (whole feed unusable) before any stock changes;
        FeedTooLarge or ImportStopped once it is found too large or is stopped (the report is kept)."""
        started = time.perf_counter()
        if await self.store.get_supplier(supplier_id) is None:
            raise NotFound(f"unknown supplier {supplier_id!r}")
        stop = stop or ImportStop()
        reader = await asyncio.to_thread(
            FeedReader,
            source,
            fmt,
            on_read=on_read,
            max_bytes=limits.max_bytes,
            max_line_bytes=limits.max_line_bytes,
            should_stop=stop.requested,
        )
        report = FeedReport(
            feed_id=uuid.uuid4().hex,
            supplier_id=supplier_id,
            profile=STOCK_PROFILE,
            mode="delta",
            format=str(fmt),
            created_at=datetime.now(UTC),
        )
        return await self._run(reader, report, stop, started)

    async def _run(
        self, reader: FeedReader, report: FeedReport, stop: ImportStop, started: float
    ) -> FeedReport:
        """Check the columns on the first batch, then gather batch after batch (reading the next meanwhile),
        writing what is gathered per SKU after a batch that comes SKU by SKU (a feed grouped by SKU is
        written as it is read), every ``group_rows`` rows and at the end."""
        records = reader.records()
        seen: dict[tuple[str, str], int] = {}
        pending: asyncio.Future[_Batch] | None = None

        def prepare() -> asyncio.Future[_Batch]:
            return asyncio.ensure_future(
                asyncio.to_thread(_prepare_batch, records, report.supplier_id, seen, self.batch_rows)
            )

        batch = await prepare()
        _check_columns(reader.columns)  # FeedError: refused, nothing changed and no report kept
        await self.store.save_feed(report)
        group = _Group()
        try:
            while True:
                stop.check()
                pending = None if batch.exhausted else prepare()
                group.add(batch)
                if pending is None or len(group.rows) >= self.group_rows or _grouped_by_sku(batch.rows):
                    await self._apply(report, group, stop)
                    group = _Group()
                if pending is None:
                    break
                batch, pending = await pending, None
            report.bytes_read = reader.bytes_read
            report.status = FeedStatus.COMPLETED if reader.complete else FeedStatus.PARTIAL
        except BaseException as exc:
            if pending is not None:  # let the worker stop reading before the caller closes the source
                with contextlib.suppress(BaseException):
                    await pending
            report.status = FeedStatus.FAILED
            report.bytes_read = reader.bytes_read
            report.notes.append(f"import stopped: {stop_reason(exc, stop)}"[:500])
            await self._finish(report, started)
            if isinstance(exc, ReadStopped):
                raise ImportStopped(stop.reason or str(exc)) from None
            raise
        await self._finish(report, started)
        return report

    async def _apply(self, report: FeedReport, group: _Group, stop: ImportStop) -> None:
        errors = group.errors
        for rows, lines in group.chunks(self.batch_rows):
            stop.check()
            outcome = await self.writer.set_warehouse_stock(rows)
            errors += [LineError(lines[r.position], r.reason) for r in outcome.refused]
            report.changed += outcome.changed
            report.unchanged += outcome.unchanged
            report.accepted += outcome.changed + outcome.unchanged
        for error in sorted(errors, key=lambda e: e.line):
            report.reject(error)

    async def _finish(self, report: FeedReport, started: float) -> None:
        await finish_report(
            self.store,
            report,
            started,
            self._on_report,
            done="ingest.stock_feed_done",
            save_failed="ingest.save_stock_report_failed",
        )
