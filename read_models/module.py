"""The read-models feature module: the recommendations storefront route over the store it is given.

The container opens the store (``EMPORIUM_RECOMMENDATIONS_URL``: SQLite embedded, Cassandra in a cluster)
and creates its schema; with ``inprocess_projectors`` (embedded default) the recommendations projector
runs here as a background task, otherwise ``emporium project`` runs it elsewhere and this process only
reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask
from kernel.runtime import ReadinessCheck, Runtime
from read_models.api import recommendations_router
from read_models.recommendations import RecommendationsStore
from read_models.recommendations_projector import recommendations_projector

if TYPE_CHECKING:
    from litestar.types import ControllerRouterHandler


class ReadModelsModule:
    name = "recommendations"

    def __init__(self, runtime: Runtime, *, store: RecommendationsStore) -> None:
        self.runtime = runtime
        self.store = store
        self.projector: ProjectorTask | None = None

    def route_handlers(self) -> Sequence[ControllerRouterHandler]:
        return [recommendations_router(self.store)]

    async def start(self) -> None:
        if self.runtime.settings.inprocess_projectors:
            self.projector = recommendations_projector(
                self.runtime.event_log, self.store, metrics=ProjectorMetrics.of(self.runtime.metrics)
            )
            self.projector.start()

    async def stop(self) -> None:
        if self.projector is not None:
            await self.projector.stop()
            self.projector = None

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        return {"store": self.store.ping}
