"""Inventory module: HTTP routes over the reservation engine it is given, the outbox relay and, with
``inprocess_projectors`` (embedded default), the feed consumer (the container starts and closes the engine
itself). Otherwise the feed consumer runs in ``emporium project`` (``FeedTask``), where the projectors run:
API workers that start, stop and die under load then never rebalance its consumer group, and their
readiness does not wait for it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from inventory.api import inventory_router
from inventory.events import FEED_GROUP, FeedStockConsumer, OutboxRelay
from inventory.holds import HoldPolicy
from inventory.metrics import EngineCollector, ReservationOutcomes
from inventory.sales import SalesRecorder
from kernel.eventlog.port import EventLog
from kernel.runtime import ReadinessCheck, Runtime

if TYPE_CHECKING:
    from inventory.cluster import ClusterEngine
    from inventory.sqlite import SqliteEngine


class FeedTask:
    """The feed consumer with an outbox relay of its own (the stock events of what it takes in), as a
    service of a projector process (``emporium project``)."""

    def __init__(self, engine: ClusterEngine | SqliteEngine, event_log: EventLog, *, group: str = FEED_GROUP):
        self.relay = OutboxRelay(engine, event_log, name="inventory-feed-outbox-relay")
        engine.on_outbox = self.relay.notify
        self.feed = FeedStockConsumer(engine, event_log, group=group)
        self.group = group

    def start(self) -> None:
        self.relay.start()
        self.feed.start()

    async def stop(self) -> None:
        await self.feed.stop()
        await self.relay.stop()


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
        inprocess = runtime.settings.inprocess_projectors
        self.feed = FeedStockConsumer(self.engine, runtime.event_log) if inprocess else None
        self.outcomes = ReservationOutcomes(runtime.metrics)
        runtime.metrics.register(EngineCollector(engine))

    def route_handlers(self) -> Sequence[Any]:
        settings = self.runtime.settings
        return [inventory_router(self, settings.admin_token, self.holds, self.sales, self.outcomes)]

    async def start(self) -> None:
        self.relay.start()
        if self.feed is not None:
            self.feed.start()
        if self.sales is not None:
            await self.sales.start()

    async def stop(self) -> None:
        """Before the engine closes: the relay's last drain still reads the outbox."""
        if self.sales is not None:
            await self.sales.stop()
        if self.feed is not None:
            await self.feed.stop()
        await self.relay.stop()

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        checks: dict[str, ReadinessCheck] = {"engine": self.engine.ping}
        if self.feed is not None:
            checks["stock_feed"] = self.feed.caught_up
        return checks
