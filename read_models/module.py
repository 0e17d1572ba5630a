"""The read-models feature modules: the recommendation routes over the recommendations store, and the
trending route over the trending store, each with its projector.

The container opens the stores (``EMPORIUM_RECOMMENDATIONS_URL``: SQLite embedded, Cassandra in a
cluster; ``EMPORIUM_CACHE_URL``: in-process or Redis for trending). With ``inprocess_projectors``
(embedded default) the projectors run here as background tasks, otherwise ``emporium project`` runs them
elsewhere and this process only reads; a volatile (in-process) trending store is always followed here,
since no other process can fill it. Both answer only buyable products: the composition root gives them
``sold_out``, the live out-of-stock question.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask
from kernel.runtime import ReadinessCheck, Runtime
from read_models.api import recommendations_router
from read_models.availability import SoldOutProducts, nothing_sold_out
from read_models.recommendations import RecommendationsStore
from read_models.recommendations_projector import recommendations_projector
from read_models.serving import RecommendationsReader, TrendingReader
from read_models.trending import TrendingStore
from read_models.trending_api import trending_router
from read_models.trending_projector import trending_projector

if TYPE_CHECKING:
    from litestar.types import ControllerRouterHandler


class _ProjectedModule:
    """Start and stop of a module whose read model one projector keeps current."""

    name: str
    runtime: Runtime
    projector: ProjectorTask | None = None

    def _projector(self) -> ProjectorTask | None:
        raise NotImplementedError

    async def start(self) -> None:
        self.projector = self._projector()
        if self.projector is not None:
            self.projector.start()

    async def stop(self) -> None:
        if self.projector is not None:
            await self.projector.stop()
            self.projector = None


class ReadModelsModule(_ProjectedModule):
    name = "recommendations"

    def __init__(
        self, runtime: Runtime, *, store: RecommendationsStore, sold_out: SoldOutProducts = nothing_sold_out
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.reader = RecommendationsReader(store, sold_out)

    def route_handlers(self) -> Sequence[ControllerRouterHandler]:
        return [recommendations_router(self.reader)]

    def _projector(self) -> ProjectorTask | None:
        if not self.runtime.settings.inprocess_projectors:
            return None
        metrics = ProjectorMetrics.of(self.runtime.metrics)
        return recommendations_projector(self.runtime.event_log, self.store, metrics=metrics)

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        return {"store": self.store.ping}


WARMUP_TIMEOUT_S = 120.0


class TrendingModule(_ProjectedModule):
    name = "trending"

    def __init__(
        self, runtime: Runtime, *, store: TrendingStore, sold_out: SoldOutProducts = nothing_sold_out
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.reader = TrendingReader(store, sold_out)

    def route_handlers(self) -> Sequence[ControllerRouterHandler]:
        return [trending_router(self.reader)]

    def _projector(self) -> ProjectorTask | None:
        if not (self.runtime.settings.inprocess_projectors or self.store.volatile):
            return None
        metrics = ProjectorMetrics.of(self.runtime.metrics)
        return trending_projector(self.runtime.event_log, self.store, metrics=metrics)

    async def start(self) -> None:
        """A volatile store is refilled from the log before the API answers: a restart never shows an
        empty trending list for lists the log holds."""
        await super().start()
        if self.projector is not None and self.store.volatile:
            try:
                await self.projector.wait_caught_up(timeout_s=WARMUP_TIMEOUT_S)
            except BaseException:
                await self.stop()
                raise

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        return {"store": self.store.ping}
