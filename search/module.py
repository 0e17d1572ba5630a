"""The search feature module: storefront routes over the index and out-of-stock set it is given, and
the background work that keeps them current. The container opens both and ensures the live index exists.

At start:

1. every serving process follows the logistics topic into its own delivery-zones model (file defaults first);
2. a volatile out-of-stock set (``memory://``) is refilled by replaying catalog + inventory from the
   beginning before the API answers, so a restart never shows items that are out of stock;
3. with ``inprocess_projectors`` (embedded default) the live projectors (out-of-stock fast path and search
   index) run here as background tasks; a cluster deployment runs ``emporium project`` instead. If the
   set is volatile and projectors run elsewhere, the warm-up keeps following the log so this process
   stays exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import structlog

from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask, unique_group
from kernel.runtime import ReadinessCheck, Runtime
from search.activity import ActivityPublisher
from search.api import storefront_router
from search.cache import ResultCache
from search.delivery_zones import DeliveryZones
from search.metrics import SearchMetrics
from search.out_of_stock import OutOfStockSet
from search.port import SearchIndex
from search.projection import SearchProjection
from search.projectors import ZoneProjection, live_projectors
from search.service import SearchService

if TYPE_CHECKING:
    from litestar.types import ControllerRouterHandler

log = structlog.get_logger(__name__)

WARMUP_TIMEOUT_S = 300.0


class SearchModule:
    name = "search"

    def __init__(
        self,
        runtime: Runtime,
        *,
        index: SearchIndex,
        stock: OutOfStockSet,
        zones: DeliveryZones | None = None,
    ) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.index = index
        self.stock = stock
        self.zones = zones or DeliveryZones.from_file()
        self.search_metrics = SearchMetrics(runtime.metrics)
        self.projector_metrics = ProjectorMetrics.of(runtime.metrics)
        self.activity = ActivityPublisher(runtime.event_log, metrics=self.search_metrics)
        inprocess = settings.inprocess_projectors
        # In-process projectors report every index write to the cache (``index_changed``); otherwise the
        # index is written by other processes and a short TTL bounds staleness (like an index refresh).
        self.cache = (
            ResultCache(
                settings.search_cache_entries,
                ttl_s=300.0 if inprocess else 1.0,
                stock_out_grace_s=settings.search_stock_out_grace_s,
            )
            if settings.search_cache_entries > 0
            else None
        )
        self.service = SearchService(
            cache=self.cache,
            index=self.index,
            stock=self.stock,
            zones=self.zones,
            activity=self.activity,
            metrics=self.search_metrics,
        )
        self._running = AsyncExitStack()

    def route_handlers(self) -> Sequence[ControllerRouterHandler]:
        return [storefront_router(self.service)]

    def _run(self, task: ProjectorTask) -> None:
        task.start()
        self._running.push_async_callback(task.stop)

    async def start(self) -> None:
        event_log, metrics = self.runtime.event_log, self.projector_metrics
        zones = ZoneProjection(self.zones)
        self._run(
            ProjectorTask(
                event_log,
                zones,
                group=unique_group("read-models.zones"),
                metrics=metrics,
                replay=True,
                batch_size=200,
            )
        )
        inprocess = self.runtime.settings.inprocess_projectors
        if self.stock.volatile:
            await self._warm_up(keep_following=not inprocess)
        if inprocess:
            changed = self.cache.index_changed if self.cache is not None else None
            for task in live_projectors(
                event_log, index=self.index, stock=self.stock, metrics=metrics, on_index_write=changed
            ):
                self._run(task)
        await self.activity.start()
        self._running.push_async_callback(self.activity.stop)

    async def _warm_up(self, *, keep_following: bool) -> None:
        """Refill the volatile out-of-stock set from the log before the API answers."""
        warmup = ProjectorTask(
            self.runtime.event_log,
            SearchProjection(index=None, stock=self.stock),
            group=unique_group("read-models.search.warmup"),
            metrics=self.projector_metrics,
            replay=True,
        )
        warmup.start()
        try:
            await warmup.wait_caught_up(timeout_s=WARMUP_TIMEOUT_S)
        except BaseException:
            await warmup.stop()
            raise
        log.info("out-of-stock set warmed up from the log", events=warmup.processor.stats.processed)
        if keep_following:
            self._running.push_async_callback(warmup.stop)
        else:
            await warmup.stop()  # the live projector keeps it current

    async def stop(self) -> None:
        await self._running.aclose()

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        return {"index": self.index.ping, "stock_set": self.stock.ping}
