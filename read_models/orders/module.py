"""The orders feature module: the order-history routes over the store it is given; with
``inprocess_projectors`` (embedded default) the orders projector runs here, otherwise under
``emporium project``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask
from kernel.runtime import ReadinessCheck, Runtime
from read_models.orders.api import orders_router
from read_models.orders.port import OrdersStore
from read_models.orders.projector import orders_projector


class OrdersModule:
    name = "orders"

    def __init__(self, runtime: Runtime, *, store: OrdersStore) -> None:
        self.runtime = runtime
        self.store = store
        self.projector: ProjectorTask | None = None

    def route_handlers(self) -> Sequence[Any]:
        return [orders_router(self.store)]

    async def start(self) -> None:
        if self.runtime.settings.inprocess_projectors:
            self.projector = orders_projector(
                self.runtime.event_log, self.store, metrics=ProjectorMetrics.of(self.runtime.metrics)
            )
            self.projector.start()

    async def stop(self) -> None:
        if self.projector is not None:
            await self.projector.stop()
            self.projector = None

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        return {"store": self.store.ping}
