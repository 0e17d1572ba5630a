"""``TrendingComputed`` events -> the trending store (consumer group ``read-models.trending``).

Idempotent like every projector: within a batch only the newest revision per list is written and the
store refuses a revision it already has or has surpassed. An event naming a window, kind or region the
API could never serve is skipped and counted, not retried forever.

The in-process store (``memory://``) is volatile: the serving process then follows the trending topic
from its beginning in a group of its own (``trending_follower``), the way search refills its
out-of-stock set, because the committed offsets of the shared group say nothing about this process'
memory. The trending topic is kept forever, so the replay is complete.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from kernel.contracts.events import TRENDING_TOPIC, Envelope, TrendingComputed
from kernel.eventlog.port import EventLog
from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask, unique_group
from read_models.trending import (
    InvalidTrendingRequest,
    Trending,
    TrendingStore,
    newest_per_list,
    validate_list,
)

log = structlog.get_logger(__name__)

TRENDING_GROUP = "read-models.trending"


def trending_from_events(events: Sequence[Envelope]) -> tuple[list[Trending], int]:
    """Pure: the lists a batch should write (newest per list) and how many events were unusable."""
    lists: list[Trending] = []
    rejected = 0
    for event in events:
        payload = event.payload
        if not isinstance(payload, TrendingComputed):
            continue
        try:
            validate_list(payload.kind, payload.window, payload.region)
        except InvalidTrendingRequest:
            rejected += 1
            continue
        lists.append(
            Trending(
                kind=payload.kind,
                window=payload.window,
                region=payload.region,
                entries=payload.entries,
                window_end=payload.window_end,
                revision=event.revision,
                generated_at=event.occurred_at,
                run_id=payload.run_id,
            )
        )
    return newest_per_list(lists), rejected


class TrendingProjection:
    name = "trending"
    topics = (TRENDING_TOPIC,)

    def __init__(self, store: TrendingStore) -> None:
        self.store = store
        self.written = 0
        self.rejected = 0

    async def handle(self, events: Sequence[Envelope]) -> None:
        lists, rejected = trending_from_events(events)
        if rejected:
            self.rejected += rejected
            log.warning("trending events with an unknown window, kind or region skipped", count=rejected)
        if lists:
            self.written += await self.store.put_many(lists)


def trending_projector(
    event_log: EventLog,
    store: TrendingStore,
    *,
    metrics: ProjectorMetrics,
    group: str = TRENDING_GROUP,
    batch_size: int = 500,
    poll_timeout: float = 0.5,
) -> ProjectorTask:
    """The live projector: the shared group for a durable store, a replaying group of this process'
    own for a volatile one."""
    volatile = store.volatile
    return ProjectorTask(
        event_log,
        TrendingProjection(store),
        group=unique_group(f"{group}.local") if volatile else group,
        metrics=metrics,
        batch_size=batch_size,
        replay=volatile,
        poll_timeout=poll_timeout,
    )
