"""The search feature module: storefront routes, its read models and (embedded) in-process projectors.

At start:

1. the search index is opened (``EMPORIUM_SEARCH_URL``) and its live index created if missing;
2. every serving process follows the logistics topic into its own delivery-zones model (file defaults first);
3. a volatile out-of-stock set (``memory://``) is refilled by replaying catalog + inventory from the
   beginning before the API answers, so a restart never shows items that are out of stock;
4. with ``inprocess_projectors`` (embedded default) the live projectors (out-of-stock fast path and search
   index) run here as background tasks; a cluster deployment runs ``emporium project`` instead. If the
   set is volatile and projectors run elsewhere, the warm-up keeps following the log so this process
   stays exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog

from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask, unique_group
from kernel.runtime import ReadinessCheck, Runtime
from search.activity import ActivityPublisher
from search.api import storefront_router
from search.cache import ResultCache
from search.delivery_zones import DeliveryZones
from search.metrics import SearchMetrics
from search.out_of_stock import OutOfStockSet, open_out_of_stock_set
from search.port import RebuildableSearchIndex, SearchIndex
from search.projection import SearchProjection
from search.projectors import ZoneProjection, live_projectors
from search.service import SearchService

if TYPE_CHECKING:
    from litestar.types import ControllerRouterHandler

log = structlog.get_logger(__name__)

WARMUP_TIMEOUT_S = 300.0


def open_index(url: str) -> RebuildableSearchIndex:
    from search.factory import open_search_index

    return open_search_index(url)


class SearchModule:
    name = "search"

    def __init__(
        self,
        runtime: Runtime,
        *,
        index: SearchIndex | None = None,
        stock: OutOfStockSet | None = None,
        zones: DeliveryZones | None = None,
    ) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.index = index or open_index(settings.search_url)
        self.stock = stock or open_out_of_stock_set(settings.cache_url)
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
        self.tasks: list[ProjectorTask] = []

    def route_handlers(self) -> Sequence[ControllerRouterHandler]:
        return [storefront_router(self.service)]

    async def start(self) -> None:
        await self.index.ensure_index()
        event_log, metrics = self.runtime.event_log, self.projector_metrics
        zones = ProjectorTask(
            event_log,
            ZoneProjection(self.zones),
            group=unique_group("read-models.zones"),
            metrics=metrics,
            replay=True,
            batch_size=200,
        )
        zones.start()
        self.tasks.append(zones)

        inprocess = self.runtime.settings.inprocess_projectors
        if self.stock.volatile:
            warmup = ProjectorTask(
                event_log,
                SearchProjection(index=None, stock=self.stock),
                group=unique_group("read-models.search.warmup"),
                metrics=metrics,
                replay=True,
            )
            warmup.start()
            await warmup.wait_caught_up(timeout_s=WARMUP_TIMEOUT_S)
            log.info("out-of-stock set warmed up from the log", events=warmup.processor.stats.processed)
            if inprocess:
                await warmup.stop()  # the live projector below keeps it current
            else:
                self.tasks.append(warmup)
        if inprocess:
            changed = self.cache.index_changed if self.cache is not None else None
            projectors = live_projectors(
                event_log, index=self.index, stock=self.stock, metrics=metrics, on_index_write=changed
            )
            for task in projectors:
                task.start()
                self.tasks.append(task)
        await self.activity.start()

    async def stop(self) -> None:
        for task in reversed(self.tasks):
            await task.stop()
        self.tasks.clear()
        await self.activity.stop()
        await self.index.close()
        await self.stock.close()

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        return {"index": self.index.ping, "stock_set": self.stock.ping}


def create_module(runtime: Runtime) -> SearchModule:
    return SearchModule(runtime)
