"""What a history import produces: purchase rows in ``ACTIVITY_SCHEMA``, and its report (pure: no I/O)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
import pyarrow as pa

from analytics.schema import ACTIVITY_SCHEMA, PURCHASE

MAX_REPORTED_ERRORS = 100  # the report lists this many rejected lines; the count covers them all


class LineError(ValueError):
    """A line that cannot be imported; the message is the reason the report gives."""


class FileError(ValueError):
    """A file that cannot be imported at all (missing, wrong columns); nothing is written."""


class Skip(msgspec.Struct, frozen=True):
    """A valid line that is not a sale (a cancellation, an adjustment): counted by reason, not rejected."""

    reason: str


class Sale(msgspec.Struct, frozen=True, kw_only=True):
    """One purchased item (one row of the activity table)."""

    event_id: str
    occurred_at: datetime
    order_id: str
    product_id: str
    quantity: int
    user_id: str | None = None
    region: str | None = None
    sku: str | None = None
    unit_price: Decimal | None = None
    currency: str | None = None
    category: str | None = None
    brand: str | None = None


class LineRejection(msgspec.Struct, frozen=True):
    line: int
    reason: str
    file: str = ""


class ImportReport(msgspec.Struct, kw_only=True):
    """What ``analytics import-history`` did; ``already_imported``: the same content was imported before."""

    profile: str
    digest: str
    accepted: int = 0
    skipped: dict[str, int] = {}
    rejected: int = 0
    errors: list[LineRejection] = []
    files: int = 0
    already_imported: bool = False

    def reject(self, line: int, reason: str, file: str = "") -> None:
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(LineRejection(line, reason, file))

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


class SaleColumns:
    """Sales gathered as columns, then one table (``source``: the profile they came from)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.columns: dict[str, list[Any]] = {name: [] for name in ACTIVITY_SCHEMA.names}

    def add(self, sale: Sale) -> None:
        values = msgspec.structs.asdict(sale)
        for name, column in self.columns.items():
            column.append(values.get(name))

    def to_table(self) -> pa.Table:
        rows = len(self.columns["event_id"])
        self.columns["event_type"] = [PURCHASE] * rows
        self.columns["source"] = [self.source] * rows
        return pa.Table.from_pydict(self.columns, schema=ACTIVITY_SCHEMA)
