"""The stock-feed contract between ingest (which reads and checks a supplier's stock feed) and inventory
(which owns stock): rows of warehouse quantities in, what changed out.

Why a call and not an event: a stock feed's report says which lines changed stock, and the stock is
reservable when the call returns, so the rows are handed to the inventory engine directly; the engine
publishes the stock events of what changed through its outbox, as for every other movement. The
composition root (``emporium``) gives ingest the engine as its ``WarehouseStockWriter``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import msgspec


class WarehouseQuantity(NamedTuple):
    """One stock-feed row: ``quantity`` units of a supplier-scoped SKU in ``warehouse``."""

    sku: str
    warehouse: str
    quantity: int


class RowRefusal(NamedTuple):
    """A row the writer did not apply: its position in the batch and why."""

    position: int
    reason: str


class WarehouseStockOutcome(msgspec.Struct):
    """Of a batch's rows: how many changed a quantity, how many named the quantity already kept, and
    which were refused (every row of a refused SKU)."""

    changed: int = 0
    unchanged: int = 0
    refused: list[RowRefusal] = msgspec.field(default_factory=list)


class WarehouseStockWriter(Protocol):
    async def set_warehouse_stock(self, rows: Sequence[WarehouseQuantity]) -> WarehouseStockOutcome:
        """Set each row's warehouse quantity; the SKU's other warehouses keep theirs and its on-hand
        becomes the sum. Atomic per SKU; raises only when nothing could be decided (retry later)."""
        ...
