"""Fire-and-forget storefront activity events (searches, views, purchases), shared by every context.

A request only enqueues; one background task per publisher builds the envelopes and publishes them in
batches. A payload that needs a lookup first (a purchase enriched with price and category) is enqueued as
a coroutine function, awaited by that task, off the request path.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

from kernel.contracts.events import ACTIVITY_TOPIC, Payload, encode_event, new_event
from kernel.eventlog.port import EventLog, OutgoingMessage
from kernel.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

BATCH_LINGER_S = 0.01  # lets a burst of events accumulate into one publish
RETRY_AFTER_FAILURE_S = 1.0

PayloadBuilder = Callable[[], Awaitable[Payload | None]]
"""Builds a payload off the request path; ``None``: nothing to publish."""


class ActivityCounters(Protocol):
    """What a publisher counts (``ActivityMetrics``, or a context's metrics that embed them)."""

    activity_published: Counter
    activity_dropped: Counter
    activity_batch_seconds: Histogram


class ActivityMetrics:
    """One set of collectors per Prometheus registry, shared by every publisher of the process."""

    _by_registry: weakref.WeakKeyDictionary[CollectorRegistry, ActivityMetrics] = weakref.WeakKeyDictionary()

    def __init__(self, registry: CollectorRegistry) -> None:
        self.activity_published = Counter(
            "emporium_activity_events_published_total",
            "Storefront activity events published",
            registry=registry,
        )
        self.activity_dropped = Counter(
            "emporium_activity_events_dropped_total",
            "Activity events dropped: publish queue full, the log refused them, or their lookup failed",
            ["reason"],
            registry=registry,
        )
        self.activity_batch_seconds = Histogram(
            "emporium_activity_publish_seconds",
            "Time to publish one batch of activity events",
            registry=registry,
        )

    @classmethod
    def of(cls, registry: CollectorRegistry) -> ActivityMetrics:
        metrics = cls._by_registry.get(registry)
        if metrics is None:
            metrics = cls._by_registry[registry] = cls(registry)
        return metrics


class ActivityPublisher:
    """Fire-and-forget activity events: requests never wait for the log.

    ``emit`` only enqueues (O(1), never blocks); one background task publishes in batches. When the queue
    is full (the log is slow or down) events are dropped and counted: analytics tolerate a gap, shoppers
    do not tolerate a slow search or checkout.
    """

    def __init__(
        self,
        event_log: EventLog,
        *,
        metrics: ActivityCounters,
        producer: str = "search",
        max_queue: int = 10_000,
        max_batch: int = 500,
    ) -> None:
        self.event_log = event_log
        self.metrics = metrics
        self.producer = producer
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Payload | PayloadBuilder, str]] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None

    def emit(self, payload: Payload | PayloadBuilder, *, key: str) -> None:
        """Enqueue only: the envelope (id, timestamp) is built and encoded by the publishing task, off
        the request path (``occurred_at`` lags the action by at most the batch linger and any lookup)."""
        try:
            self._queue.put_nowait((payload, key))
        except asyncio.QueueFull:
            self.metrics.activity_dropped.labels("queue_full").inc()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"activity-publisher-{self.producer}")

    async def stop(self, flush_timeout_s: float = 5.0) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        await cancel_and_wait([task])
        try:
            await asyncio.wait_for(self.flush(), flush_timeout_s)
        except (TimeoutError, Exception) as exc:
            log.warning("activity events lost at shutdown", pending=self._queue.qsize(), error=repr(exc))

    async def flush(self) -> None:
        while not self._queue.empty():
            await self._publish(await self._messages(self._drain()))

    def _drain(self) -> list[tuple[Payload | PayloadBuilder, str]]:
        batch: list[tuple[Payload | PayloadBuilder, str]] = []
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return batch

    async def _messages(self, items: list[tuple[Payload | PayloadBuilder, str]]) -> list[OutgoingMessage]:
        messages: list[OutgoingMessage] = []
        for payload, key in items:
            if not isinstance(payload, Payload):
                try:
                    built = await payload()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.metrics.activity_dropped.labels("lookup_failed").inc()
                    log.warning("activity event dropped: its lookup failed", error=repr(exc))
                    continue
                if built is None:
                    continue
                payload = built
            event = new_event(payload, key=key, revision=1, producer=self.producer)
            messages.append(OutgoingMessage(key, encode_event(event)))
        return messages

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            await asyncio.sleep(BATCH_LINGER_S)
            batch = await self._messages([first, *self._drain()])
            try:
                await self._publish(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.metrics.activity_dropped.labels("publish_failed").inc(len(batch))
                log.warning("activity publish failed; batch dropped", count=len(batch), error=repr(exc))
                await asyncio.sleep(RETRY_AFTER_FAILURE_S)

    async def _publish(self, batch: list[OutgoingMessage]) -> None:
        if not batch:
            return
        with self.metrics.activity_batch_seconds.time():
            await self.event_log.publish(ACTIVITY_TOPIC, batch)
        self.metrics.activity_published.inc(len(batch))
