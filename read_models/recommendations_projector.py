"""``RecommendationsComputed`` events -> the recommendations store (consumer group
``read-models.recommendations``).

Idempotent by construction: within a batch only the newest revision per user is written, and the store
itself refuses a revision it already has or has surpassed, so a redelivered batch, an out-of-order event
or a full replay (rebuild into a fresh store) all leave the newest state. Offsets are committed by the
runner only after ``handle`` returned, so a store outage retries the batch instead of losing it.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from kernel.contracts.events import RECOMMENDATIONS_TOPIC, Envelope, RecommendationsComputed
from kernel.eventlog.port import EventLog
from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask
from read_models.recommendations import (
    Recommendations,
    RecommendationsStore,
    is_valid_user_id,
    newest_per_user,
)

log = structlog.get_logger(__name__)

RECOMMENDATIONS_GROUP = "read-models.recommendations"


def recommendations_from_events(events: Sequence[Envelope]) -> tuple[list[Recommendations], int]:
    """Pure: the entries a batch should write (newest per user) and how many events were unusable.

    An event whose user id the API could never serve is skipped (and counted) rather than retried
    forever; it stays in the log for inspection.
    """
    entries: list[Recommendations] = []
    rejected = 0
    for event in events:
        payload = event.payload
        if not isinstance(payload, RecommendationsComputed):
            continue
        if not is_valid_user_id(payload.user_id):
            rejected += 1
            continue
        entries.append(
            Recommendations(
                user_id=payload.user_id,
                product_ids=payload.product_ids,
                model=payload.model,
                revision=event.revision,
                generated_at=event.occurred_at,
            )
        )
    return newest_per_user(entries), rejected


class RecommendationsProjection:
    name = "recommendations"
    topics = (RECOMMENDATIONS_TOPIC,)

    def __init__(self, store: RecommendationsStore) -> None:
        self.store = store
        self.written = 0
        self.rejected = 0

    async def handle(self, events: Sequence[Envelope]) -> None:
        entries, rejected = recommendations_from_events(events)
        if rejected:
            self.rejected += rejected
            log.warning("recommendations for invalid user ids skipped", count=rejected)
        if entries:
            self.written += await self.store.put_many(entries)


def recommendations_projector(
    event_log: EventLog,
    store: RecommendationsStore,
    *,
    metrics: ProjectorMetrics,
    group: str = RECOMMENDATIONS_GROUP,
    batch_size: int = 1000,
    replay: bool = False,
    poll_timeout: float = 0.5,
) -> ProjectorTask:
    """The live projector as a background task (``serve`` in-process, or ``emporium project``)."""
    return ProjectorTask(
        event_log,
        RecommendationsProjection(store),
        group=group,
        metrics=metrics,
        batch_size=batch_size,
        replay=replay,
        poll_timeout=poll_timeout,
    )
