"""The homepage feature module: ``GET /v1/homepage`` over the homepage cache, and its projector.

The container opens the cache (``EMPORIUM_CACHE_URL``: in-process embedded, Redis in a cluster); the
composition root hands in the live "which of these SKUs are sold out" question (the out-of-stock set of the
search read model), so this package never imports search. A volatile cache is refilled by replaying the
log before the API answers, and kept current by this process; a persistent one is kept current by the
in-process projector (``inprocess_projectors``) or by ``emporium project``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog
from prometheus_client import Histogram

from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask, unique_group
from kernel.runtime import ReadinessCheck, Runtime
from read_models.homepage.api import homepage_router
from read_models.homepage.port import HomepageCache, SoldOut
from read_models.homepage.projection import HOMEPAGE_GROUP, homepage_projector
from read_models.homepage.service import Freshness, HomepageService

if TYPE_CHECKING:
    from litestar.types import ControllerRouterHandler

log = structlog.get_logger(__name__)

WARMUP_TIMEOUT_S = 300.0


class HomepageModule:
    name = "homepage"

    def __init__(
        self, runtime: Runtime, *, cache: HomepageCache, sold_out: SoldOut, freshness: Freshness | None = None
    ) -> None:
        self.runtime = runtime
        self.cache = cache
        builds = Histogram(
            "emporium_homepage_build_seconds",
            "Homepage documents built by this process (one per region and platform when stale), and how long",
            registry=runtime.metrics,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.service = HomepageService(cache, sold_out, freshness=freshness, on_build=builds.observe)
        self.projector: ProjectorTask | None = None

    def route_handlers(self) -> Sequence[ControllerRouterHandler]:
        return [homepage_router(self.service)]

    async def start(self) -> None:
        metrics = ProjectorMetrics.of(self.runtime.metrics)
        if self.cache.volatile:
            # this process's own copy: replay everything, then keep following
            self.projector = homepage_projector(
                self.runtime.event_log,
                self.cache,
                metrics=metrics,
                group=unique_group(HOMEPAGE_GROUP),
                replay=True,
            )
            self.projector.start()
            try:
                await self.projector.wait_caught_up(timeout_s=WARMUP_TIMEOUT_S)
            except TimeoutError:
                log.warning("homepage cache still catching up with the log; serving meanwhile")
        elif self.runtime.settings.inprocess_projectors:
            self.projector = homepage_projector(self.runtime.event_log, self.cache, metrics=metrics)
            self.projector.start()

    async def stop(self) -> None:
        await self.service.stop()
        if self.projector is not None:
            await self.projector.stop()
            self.projector = None

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        return {"cache": self.cache.ping}
