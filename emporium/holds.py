"""The commerce context's ``StockHolds`` over the inventory engine: a checkout's lines become one group
reservation (``inventory.groups``), and the engine's refusals become commerce's.

Here because contexts never import each other: the composition root is the one place that knows both.
"""

from __future__ import annotations

from collections.abc import Sequence

from commerce.domain import (
    CommerceUnavailable,
    HeldStock,
    HoldEnded,
    HoldLimitReached,
    OutOfStock,
)
from inventory.domain import (
    EngineUnavailable,
    InsufficientStock,
    InvalidTransition,
    LimitExceeded,
)
from inventory.domain import UnknownSku as UnknownStock
from inventory.groups import GroupReserveRequest
from inventory.port import ReservationEngine


class InventoryHolds:
    def __init__(self, engine: ReservationEngine) -> None:
        self.engine = engine

    async def hold(
        self, lines: Sequence[tuple[str, int]], *, customer_id: str, idempotency_key: str, hold_seconds: int
    ) -> HeldStock:
        request = GroupReserveRequest(
            lines=tuple(lines),
            customer_id=customer_id,
            idempotency_key=idempotency_key,
            hold_seconds=hold_seconds,
        )
        try:
            held = await self.engine.reserve_many(request)
        except InsufficientStock as exc:
            raise OutOfStock(exc.sku, exc.requested, exc.available) from None
        except UnknownStock as exc:
            quantity = dict(lines).get(exc.sku, 0)
            raise OutOfStock(exc.sku, quantity, 0) from None
        except LimitExceeded as exc:
            raise HoldLimitReached(exc.sku, exc.limit, exc.already) from None
        except EngineUnavailable as exc:
            raise CommerceUnavailable(str(exc)) from None
        return HeldStock(reservation_ids=tuple(r.reservation_id for r in held), expires_at=held[0].expires_at)

    async def confirm(self, reservation_ids: Sequence[str]) -> None:
        try:
            await self.engine.confirm_many(reservation_ids)
        except InvalidTransition as exc:
            raise HoldEnded(exc.status.value) from None
        except EngineUnavailable as exc:
            raise CommerceUnavailable(str(exc)) from None

    async def release(self, reservation_ids: Sequence[str]) -> None:
        try:
            await self.engine.release_many(reservation_ids)
        except EngineUnavailable as exc:
            raise CommerceUnavailable(str(exc)) from None

    async def available(self, skus: Sequence[str]) -> dict[str, int]:
        try:
            levels = await self.engine.stock_levels(skus)
        except EngineUnavailable as exc:
            raise CommerceUnavailable(str(exc)) from None
        return {sku: level.available for sku, level in levels.items()}
