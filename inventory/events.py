"""Stock events: outbox rows written in the same transaction as the movement, a relay that
publishes them to the event log, and the consumer that turns supplier-feed stock into on-hand.

The outbox table and its relay are the kernel's (``kernel.eventlog.outbox``; re-exported here). Why an
outbox: publishing after COMMIT from the request path loses the event if the process dies in
between; a row committed with the movement is published later by the relay (at least once; every
event carries the SKU's stock revision, so the out-of-stock projector drops repeats and stale ones).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple, Protocol

import structlog

from inventory.domain import StockLevel, stock_events
from inventory.feed_stock import FeedOutcome, FeedStock
from kernel.contracts.events import (
    CATALOG_TOPIC,
    Envelope,
    Payload,
    ProductUpserted,
    StockLevelChanged,
    encode_event,
    new_event,
)
from kernel.contracts.identifiers import catalog_sku
from kernel.eventlog.outbox import Outbox, OutboxEntry, OutboxRelay
from kernel.eventlog.port import EventLog
from kernel.eventlog.processing import ConsumedEvent, EventProcessor, wait_caught_up

log = structlog.get_logger(__name__)

__all__ = ["FeedStockConsumer", "Outbox", "OutboxEntry", "OutboxRelay", "OutboxRow", "outbox_rows"]

PRODUCER = "inventory"
FEED_GROUP = "inventory-feed"


class OutboxRow(NamedTuple):
    """A stock event to write to the outbox table in the transaction of its movement."""

    topic: str
    key: str
    value: bytes  # the encoded envelope


class EnvelopeFactory:
    """Envelopes of the stock events of one transaction: one clock read, and random event ids drawn in
    blocks (``new_event`` pays a uuid4, a syscall, and a clock read per event: a stock feed writes
    thousands in one transaction)."""

    _BLOCK = 16 * 256

    def __init__(self) -> None:
        self._now = datetime.now(UTC)
        self._random = b""
        self._next = 0

    def __call__(self, payload: Payload, *, key: str, revision: int) -> Envelope:
        if self._next + 16 > len(self._random):
            self._random, self._next = os.urandom(self._BLOCK), 0
        start = self._next
        self._next = start + 16
        return Envelope(
            event_id=self._random[start : start + 16].hex(),
            type=payload.event_type,
            occurred_at=self._now,
            key=key,
            revision=revision,
            producer=PRODUCER,
            payload=payload,
        )


def outbox_rows(
    before: StockLevel | None,
    after: StockLevel,
    *,
    reason: str,
    low_stock_threshold: int,
    envelopes: EnvelopeFactory | None = None,
) -> list[OutboxRow]:
    rows: list[OutboxRow] = []
    for payload in stock_events(before, after, reason=reason, low_stock_threshold=low_stock_threshold):
        if envelopes is None:
            envelope = new_event(payload, key=after.sku, revision=after.revision, producer=PRODUCER)
        else:
            envelope = envelopes(payload, key=after.sku, revision=after.revision)
        rows.append(OutboxRow(payload.topic, after.sku, encode_event(envelope)))
    return rows


def stock_level_row(stock: StockLevel, *, reason: str) -> OutboxRow:
    """A StockLevelChanged of the SKU's current stock, whatever changed (e.g. its key, by a migration)."""
    payload = StockLevelChanged(
        sku=stock.sku,
        on_hand=stock.on_hand,
        held=stock.held,
        sold=stock.sold,
        available=stock.available,
        in_stock=stock.in_stock,
        reason=reason,
    )
    envelope = new_event(payload, key=stock.sku, revision=stock.revision, producer=PRODUCER)
    return OutboxRow(payload.topic, stock.sku, encode_event(envelope))


class FeedEngine(Protocol):
    async def adjust_many_from_feed(self, changes: Sequence[FeedStock]) -> FeedOutcome: ...


FEED_BATCH = 2000  # catalog events per batch: one engine call (one SQLite transaction) each


class FeedStockConsumer:
    """Consumer group ``inventory-feed`` on the catalog topic: feed stock -> on-hand, holds untouched.

    Runs on the shared EventProcessor loop (at-least-once, dead letters, retry with backoff): a
    batch is committed only after every stock change in it is durable; the per-product revision
    makes redelivery harmless (older or repeated feed revisions are ignored by the engine). A batch's
    stocks go to the engine in one call (``adjust_many_from_feed``): a catch-up after a restart is
    thousands of catalog events, most of them with no stock change.

    Where it runs: with the projectors (``serve`` with ``inprocess_projectors``, else ``emporium
    project``), so that API workers coming and going never rebalance its group.
    """

    def __init__(
        self,
        engine: FeedEngine,
        event_log: EventLog,
        *,
        group: str = FEED_GROUP,
        batch_size: int = FEED_BATCH,
    ) -> None:
        self.engine = engine
        self.processor = EventProcessor(event_log, [CATALOG_TOPIC], group, self.handle, batch_size=batch_size)
        self.group = group
        self._task: asyncio.Task[None] | None = None
        self.applied = 0
        self._caught_up = False

    async def lag(self) -> int:
        """Catalog events not yet committed by this consumer's group."""
        return sum((await self.processor.refresh_lag()).values())

    async def caught_up(self) -> None:
        """Readiness: raises until the consumer has once taken in every catalog event published before
        (until then a product the storefront already shows can still be missing its stock). Later lag
        is normal operation and does not make the server unready."""
        if self._caught_up:
            return
        behind = await self.lag()
        if behind:
            raise RuntimeError(f"stock feed catching up: {behind} catalog events to take in")
        self._caught_up = True

    async def wait_caught_up(self, *, timeout_s: float) -> None:
        await wait_caught_up(self.lag, self._task, what="stock feed", timeout_s=timeout_s)
        self._caught_up = True

    async def handle(self, events: Sequence[ConsumedEvent]) -> None:
        changes = [change for change in map(feed_stock_of, events) if change is not None]
        if not changes:
            return
        outcome = await self.engine.adjust_many_from_feed(changes)  # EngineUnavailable: batch retried
        for sku, error in outcome.rejected.items():
            log.warning("feed stock rejected", sku=sku, error=error)
        self.applied += outcome.applied

    def start(self) -> None:
        self._task = asyncio.create_task(self.processor.run(), name="inventory-feed-consumer")

    async def stop(self) -> None:
        if self._task is not None:
            self.processor.stop()
            try:
                await asyncio.wait_for(self._task, 10)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            self._task = None


def feed_stock_of(consumed: ConsumedEvent) -> FeedStock | None:
    """The stock a catalog event carries (None: not an upsert, or no stock column in its feed)."""
    envelope = consumed.event
    payload = envelope.payload
    if not isinstance(payload, ProductUpserted) or payload.product.stock is None:
        return None
    product = payload.product
    stock = {w: q for w, q in payload.product.stock.items() if isinstance(q, int) and q >= 0}
    sku = catalog_sku(product.supplier_id, product.sku)  # events before scoped SKUs: bare
    return FeedStock(sku, stock, envelope.revision)
