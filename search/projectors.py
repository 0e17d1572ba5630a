"""The search read model's projectors: the out-of-stock fast path, the search index and the zone follower.

Consumer groups:

* ``read-models.stock``: the out-of-stock fast path (inventory topic -> out-of-stock set only);
* ``read-models.search``: the live search-index projector. Both run in ``emporium project``, or
  in-process in ``serve``; Kafka spreads partitions over every process in a group.
* ``read-models.search.warmup.<unique>``: a volatile (in-process) out-of-stock set is refilled at start
  by replaying catalog + inventory from the beginning.
* ``read-models.zones.<unique>``: each serving process follows the logistics topic itself (tiny topic),
  so every replica has every zone.
* ``read-models.search.rebuild.<time>``: ``emporium rebuild search``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kernel.contracts.events import LOGISTICS_TOPIC, DeliveryZoneUpdated, Envelope
from kernel.eventlog.port import EventLog
from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask
from search.delivery_zones import DeliveryZones
from search.out_of_stock import OutOfStockSet
from search.port import IndexChange, SearchIndex
from search.projection import SearchProjection, StockProjection

LIVE_SEARCH_GROUP = "read-models.search"
LIVE_STOCK_GROUP = "read-models.stock"


class ZoneProjection:
    """DeliveryZoneUpdated -> the in-memory zones model of this process."""

    name = "zones"
    topics = (LOGISTICS_TOPIC,)

    def __init__(self, zones: DeliveryZones) -> None:
        self.zones = zones

    async def handle(self, events: Sequence[Envelope]) -> None:
        for event in events:
            if isinstance(event.payload, DeliveryZoneUpdated):
                self.zones.update(event.payload.zone, event.payload.warehouses, revision=event.revision)


# A Tantivy commit (or an Elasticsearch bulk + refresh) has a large fixed cost, so catching up (a restart,
# a big feed import) goes faster in large batches; a trickle of events never waits for a batch to fill (the
# poll returns what is there).
LIVE_BATCH_SIZE = 5000


def live_projectors(
    event_log: EventLog,
    *,
    index: SearchIndex,
    stock: OutOfStockSet,
    metrics: ProjectorMetrics,
    batch_size: int = LIVE_BATCH_SIZE,
    index_linger_s: float = 0.2,
    on_index_write: Callable[[IndexChange], None] | None = None,
) -> list[ProjectorTask]:
    """The read-model projectors of a deployment: the out-of-stock fast path and the search index.

    The index projector lingers after a partial batch: index writes are expensive (a Tantivy commit, an
    Elasticsearch bulk + refresh) and near-real-time anyway, so a trickle of stock events becomes a few
    larger writes instead of one commit each. Stock-outs do not wait for it (the fast path filters them).
    """
    return [
        ProjectorTask(
            event_log,
            StockProjection(stock=stock),
            group=LIVE_STOCK_GROUP,
            metrics=metrics,
            batch_size=batch_size,
        ),
        ProjectorTask(
            event_log,
            SearchProjection(index=index, stock=stock, on_index_write=on_index_write),
            group=LIVE_SEARCH_GROUP,
            metrics=metrics,
            batch_size=batch_size,
            linger_s=index_linger_s,
        ),
    ]
