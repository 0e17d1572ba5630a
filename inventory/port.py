"""The reservation-engine port. Adapters: ``sqlite.SqliteEngine`` (embedded) and
``cluster.ClusterEngine`` (Redis fast path + MySQL truth); both pass tests/contract/test_inventory_engine.py.

Every method either completes durably or raises an ``inventory.domain.InventoryError``:
``EngineUnavailable`` means "not decided, nothing taken, retry later" (HTTP 503).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from inventory.domain import ReconcileReport, Reservation, ReserveRequest, StockLevel
from inventory.feed_stock import FeedOutcome, FeedStock
from inventory.groups import GroupReserveRequest
from kernel.contracts.stock import WarehouseQuantity, WarehouseStockOutcome


class ReservationEngine(Protocol):
    async def start(self) -> None:
        """Apply migrations, rebuild fast-path state if needed, start background tasks."""
        ...

    async def close(self) -> None: ...

    async def reserve(self, request: ReserveRequest) -> Reservation:
        """Hold stock atomically, or raise InsufficientStock / LimitExceeded / UnknownSku.

        A repeated idempotency key returns the original reservation and takes nothing more.
        """
        ...

    async def reserve_many(self, request: GroupReserveRequest) -> list[Reservation]:
        """Hold every line (a checkout's) atomically, one reservation per line in line order, or none:
        the first refusal (InsufficientStock / LimitExceeded / UnknownSku) is raised and nothing is held.
        A repeated idempotency key returns the original group and takes nothing more."""
        ...

    async def confirm_many(self, reservation_ids: Sequence[str]) -> list[Reservation]:
        """Sell every reservation of a group at once; if one can no longer be confirmed (expired,
        released) InvalidTransition is raised, none is sold and the group's holds are given back."""
        ...

    async def release_many(self, reservation_ids: Sequence[str]) -> list[Reservation]:
        """Release every held reservation of a group at once (idempotent); InvalidTransition, changing
        nothing, if one was confirmed."""
        ...

    async def stock_levels(self, skus: Sequence[str]) -> dict[str, StockLevel]:
        """The stock of each SKU that has a record (absent: no stock), as a reservation would see it now
        (on the cluster, the fast path's counters: never looser than the truth)."""
        ...

    async def confirm(self, reservation_id: str) -> Reservation:
        """held -> confirmed (sold). Repeats are harmless; expired/released -> InvalidTransition."""
        ...

    async def release(self, reservation_id: str) -> Reservation:
        """held -> released (stock returns). Idempotent; a confirmed reservation -> InvalidTransition."""
        ...

    async def expire_due(self, now: float | None = None, limit: int = 1000) -> int:
        """Expire holds whose expiry is at or before ``now``; returns how many expired."""
        ...

    async def set_on_hand(
        self,
        sku: str,
        on_hand: int | None,
        *,
        warehouses: dict[str, int] | None = None,
        per_customer_limit: int | None = None,
        reason: str = "admin",
    ) -> StockLevel:
        """Set the sellable quantity (creating the SKU); holds and sales are untouched.

        ``warehouses`` replaces the breakdown and on_hand becomes its sum; a bare total for a SKU kept per
        warehouse must equal the breakdown (WarehousesRequired). OnHandBelowCommitted when on_hand would
        drop below held + sold."""
        ...

    async def adjust_from_feed(
        self, sku: str, warehouses: dict[str, int], *, feed_revision: int
    ) -> StockLevel | None:
        """Catalog feed stock (warehouse -> quantity): on_hand = sum; stale revisions and the stock already
        kept change nothing (None); OnHandBelowCommitted as for set_on_hand."""
        ...

    async def adjust_many_from_feed(self, changes: Sequence[FeedStock]) -> FeedOutcome:
        """A batch of catalog feed stock (the feed consumer's): as ``adjust_from_feed`` for the newest
        revision of each SKU; a refused SKU is reported and changes nothing, the others go ahead."""
        ...

    async def set_warehouse_stock(self, rows: Sequence[WarehouseQuantity]) -> WarehouseStockOutcome:
        """Stock-feed rows: each sets one warehouse of a SKU, the others keep theirs, on_hand = sum.
        Decided per SKU (a refused SKU refuses its rows and changes nothing)."""
        ...

    async def get_stock(self, sku: str) -> StockLevel:
        """Raises UnknownSku."""
        ...

    async def get_reservation(self, reservation_id: str) -> Reservation:
        """Raises ReservationNotFound."""
        ...

    async def reconcile(self) -> ReconcileReport:
        """Rebuild fast-path state from the source of truth (a no-op rebuild for SQLite)."""
        ...

    async def ping(self) -> None:
        """Raise EngineUnavailable when the engine cannot take decisions (readiness)."""
        ...
