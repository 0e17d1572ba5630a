"""A stock feed's batch of warehouse rows, decided one SKU at a time (no I/O; both engines use it).

Rows are grouped per SKU (a SKU's rows are one stock change: atomic, one event); each SKU is decided by
``domain.decide_warehouse_rows`` against its stored stock. A refused SKU (a malformed SKU, a total over
the limit, on-hand below what is held and sold) refuses each of its rows with the reason and changes
nothing; the others go ahead. A row counts as unchanged when it names the quantity already kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from inventory.domain import InventoryError, StockLevel, decide_warehouse_rows, validate_sku
from kernel.contracts.stock import RowRefusal, WarehouseQuantity, WarehouseStockOutcome


class WarehouseRowsBatch:
    def __init__(self, rows: Sequence[WarehouseQuantity]) -> None:
        self.outcome = WarehouseStockOutcome()
        self._by_sku: dict[str, list[int]] = {}
        self._rows = rows
        for index, row in enumerate(rows):
            self._by_sku.setdefault(row.sku, []).append(index)
        for sku in list(self._by_sku):
            try:
                validate_sku(sku)
            except InventoryError as exc:
                self._refuse(sku, str(exc))

    def valid_skus(self) -> list[str]:
        return list(self._by_sku)

    def sku_rows(self, sku: str) -> dict[str, int]:
        return {self._rows[i].warehouse: self._rows[i].quantity for i in self._by_sku[sku]}

    def decide(
        self, stored: Callable[[str], StockLevel | None]
    ) -> Iterator[tuple[StockLevel | None, StockLevel]]:
        """(before, after) of every SKU to write; ``outcome`` counts and refuses the rest."""
        for sku in list(self._by_sku):
            after = self.decide_one(sku, stored(sku))
            if after is not None:
                yield after

    def decide_one(self, sku: str, before: StockLevel | None) -> tuple[StockLevel | None, StockLevel] | None:
        """(before, after) when the SKU's rows change its stock; None when refused or all unchanged."""
        rows = self.sku_rows(sku)
        try:
            after = decide_warehouse_rows(before, sku, rows)
        except InventoryError as exc:
            self._refuse(sku, str(exc))
            return None
        self.count(sku, before)
        return None if after is None else (before, after)

    def count(self, sku: str, before: StockLevel | None) -> None:
        kept = before.warehouses if before is not None and before.warehouses is not None else {}
        for i in self._by_sku[sku]:
            row = self._rows[i]
            if before is not None and kept.get(row.warehouse) == row.quantity:
                self.outcome.unchanged += 1
            else:
                self.outcome.changed += 1

    def _refuse(self, sku: str, reason: str) -> None:
        for i in self._by_sku.pop(sku):
            self.outcome.refused.append(RowRefusal(i, reason))
        self.outcome.refused.sort()
