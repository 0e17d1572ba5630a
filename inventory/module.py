"""Inventory module: HTTP routes over the reservation engine it is given, the outbox relay and the feed
consumer (the container starts and closes the engine itself)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from inventory.api import HoldPolicy, inventory_router
from inventory.events import FeedStockConsumer, OutboxRelay
from inventory.sales import SalesRecorder
from kernel.runtime import ReadinessCheck, Runtime

if TYPE_CHECKING:
    from inventory.cluster import ClusterEngine
    from inventory.sqlite import SqliteEngine


class InventoryModule:
    name = "inventory"

    def __init__(
        self,
        runtime: Runtime,
        *,
        engine: ClusterEngine | SqliteEngine,
        holds: HoldPolicy | None = None,
        sales: SalesRecorder | None = None,
    ) -> None:
        self.runtime = runtime
        self.engine = engine
        self.holds = holds
        self.sales = sales  # confirmed reservations -> Purchased activity events
        self.relay = OutboxRelay(self.engine, runtime.event_log)
        self.engine.on_outbox = self.relay.notify
        self.feed = FeedStockConsumer(self.engine, runtime.event_log)

    def route_handlers(self) -> Sequence[Any]:
        return [inventory_router(self, self.runtime.settings.admin_token, self.holds, self.sales)]

    async def start(self) -> None:
        self.relay.start()
        self.feed.start()
        if self.sales is not None:
            await self.sales.start()

    async def stop(self) -> None:
        """Before the engine closes: the relay's last drain still reads the outbox."""
        if self.sales is not None:
            await self.sales.stop()
        await self.feed.stop()
        await self.relay.stop()

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        return {"engine": self.engine.ping, "stock_feed": self.feed.caught_up}
