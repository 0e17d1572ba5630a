"""Recommendation result events -> the recommendations store (consumer group ``read-models.recommendations``).

``RecommendationsComputed`` (per user), ``RelatedProductsComputed`` (per product) and
``PopularProductsComputed`` (per region) all travel on the recommendations topic.

Idempotent by construction: within a batch only the newest revision per entity is written, and the store
itself refuses a revision it already has or has surpassed, so a redelivered batch, an out-of-order event
or a full replay (rebuild into a fresh store) all leave the newest state. Offsets are committed by the
runner only after ``handle`` returned, so a store outage retries the batch instead of losing it.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import structlog

from kernel.contracts.events import (
    RECOMMENDATIONS_TOPIC,
    Envelope,
    PopularProductsComputed,
    RecommendationsComputed,
    RelatedProductsComputed,
)
from kernel.eventlog.port import EventLog
from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask
from read_models.recommendations import (
    PopularProducts,
    Recommendations,
    RecommendationsStore,
    RelatedProducts,
    is_valid_product_id,
    is_valid_user_id,
    newest_by,
)
from read_models.regions import is_valid_region

log = structlog.get_logger(__name__)

RECOMMENDATIONS_GROUP = "read-models.recommendations"


class RankedBatch(msgspec.Struct, kw_only=True):
    """What one batch writes (newest per entity) and how many events were unusable."""

    users: list[Recommendations] = []
    related: list[RelatedProducts] = []
    popular: list[PopularProducts] = []
    rejected: int = 0


def _entry(event: Envelope) -> Recommendations | RelatedProducts | PopularProducts | None:
    """The store entry an event carries; None when its id could never be served (bad user, product or
    region id: skipped and counted rather than retried forever; it stays in the log for inspection)."""
    payload, revision, at = event.payload, event.revision, event.occurred_at
    if isinstance(payload, RecommendationsComputed):
        if not is_valid_user_id(payload.user_id):
            return None
        return Recommendations(
            user_id=payload.user_id,
            product_ids=payload.product_ids,
            model=payload.model,
            revision=revision,
            generated_at=at,
        )
    if isinstance(payload, RelatedProductsComputed):
        if not is_valid_product_id(payload.product_id):
            return None
        return RelatedProducts(
            product_id=payload.product_id,
            product_ids=payload.product_ids,
            model=payload.model,
            revision=revision,
            generated_at=at,
        )
    assert isinstance(payload, PopularProductsComputed)
    if not is_valid_region(payload.region):
        return None
    return PopularProducts(
        region=payload.region,
        product_ids=payload.product_ids,
        model=payload.model,
        revision=revision,
        generated_at=at,
    )


_KINDS = (RecommendationsComputed, RelatedProductsComputed, PopularProductsComputed)


def recommendations_from_events(events: Sequence[Envelope]) -> RankedBatch:
    """Pure: the entries a batch should write, newest per user, product and region."""
    batch = RankedBatch()
    for event in events:
        if not isinstance(event.payload, _KINDS):
            continue
        entry = _entry(event)
        if entry is None:
            batch.rejected += 1
        elif isinstance(entry, Recommendations):
            batch.users.append(entry)
        elif isinstance(entry, RelatedProducts):
            batch.related.append(entry)
        else:
            batch.popular.append(entry)
    batch.users = newest_by(batch.users, lambda r: r.user_id)
    batch.related = newest_by(batch.related, lambda r: r.product_id)
    batch.popular = newest_by(batch.popular, lambda r: r.region)
    return batch


class RecommendationsProjection:
    name = "recommendations"
    topics = (RECOMMENDATIONS_TOPIC,)

    def __init__(self, store: RecommendationsStore) -> None:
        self.store = store
        self.written = 0
        self.rejected = 0

    async def handle(self, events: Sequence[Envelope]) -> None:
        batch = recommendations_from_events(events)
        if batch.rejected:
            self.rejected += batch.rejected
            log.warning("recommendation events with invalid ids skipped", count=batch.rejected)
        if batch.users:
            self.written += await self.store.put_many(batch.users)
        if batch.related:
            self.written += await self.store.put_related(batch.related)
        if batch.popular:
            self.written += await self.store.put_popular(batch.popular)


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
