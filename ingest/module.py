"""Ingest module: supplier and feed routes, readiness and metrics over the ingest store it is given, and
the stock-feed route over the stock writer it is given (the inventory engine, wired by ``emporium``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter

from ingest.api import ingest_router
from ingest.model import FeedReport
from ingest.service import IngestService
from ingest.stock_feed import StockFeedService
from ingest.store import IngestStore
from kernel.contracts.stock import WarehouseStockWriter
from kernel.runtime import ReadinessCheck, Runtime


class IngestMetrics:
    def __init__(self, runtime: Runtime) -> None:
        self.lines = Counter(
            "emporium_ingest_lines_total", "Feed lines by outcome", ["outcome"], registry=runtime.metrics
        )
        self.feeds = Counter(
            "emporium_ingest_feeds_total",
            "Feeds imported by final status",
            ["status"],
            registry=runtime.metrics,
        )

    def observe(self, report: FeedReport) -> None:
        self.feeds.labels(str(report.status)).inc()
        for outcome in ("accepted", "rejected", "unchanged", "changed", "removed"):
            self.lines.labels(outcome).inc(getattr(report, outcome))


class IngestModule:
    name = "ingest"

    def __init__(
        self,
        runtime: Runtime,
        *,
        store: IngestStore,
        key_secret: bytes,
        stock_writer: WarehouseStockWriter | None = None,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.metrics = IngestMetrics(runtime)
        self.service = IngestService(
            self.store, runtime.event_log, key_secret=key_secret, on_report=self.metrics.observe
        )
        self.stock_feeds = (
            None
            if stock_writer is None
            else StockFeedService(self.store, stock_writer, on_report=self.metrics.observe)
        )
        self._router = ingest_router(self.service, runtime.settings, self.stock_feeds)

    def route_handlers(self) -> Sequence[Any]:
        return [self._router]

    async def start(self) -> None:
        """Nothing runs in the background: the container starts and closes the store."""

    async def stop(self) -> None:
        return None

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        return {"store": self.store.ping}
