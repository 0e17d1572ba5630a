"""Inventory module: the reservation engine, its HTTP routes, the outbox relay and the feed consumer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog

from inventory.api import inventory_router
from inventory.events import FeedStockConsumer, OutboxRelay
from inventory.factory import build_engine
from kernel.runtime import ReadinessCheck, Runtime

log = structlog.get_logger(__name__)


class InventoryModule:
    name = "inventory"

    def __init__(self, runtime: Runtime, **engine_options: Any) -> None:
        self.runtime = runtime
        self.engine = build_engine(runtime.settings, **engine_options)
        self.relay = OutboxRelay(self.engine, runtime.event_log)
        self.engine.on_outbox = self.relay.notify
        self.feed = FeedStockConsumer(self.engine, runtime.event_log)

    def route_handlers(self) -> Sequence[Any]:
        return [inventory_router(self, self.runtime.settings.admin_token)]

    async def start(self) -> None:
        await self.engine.start()
        self.relay.start()
        self.feed.start()

    async def stop(self) -> None:
        await self.feed.stop()
        await self.engine.close()
        await self.relay.stop()

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        return {"engine": self.engine.ping, "stock_feed": self.feed.caught_up}


def create_module(runtime: Runtime) -> InventoryModule:
    return InventoryModule(runtime)
