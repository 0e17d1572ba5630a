"""Fire-and-forget storefront activity events (searches, product views, cart adds): a request enqueues,
one background task publishes in batches, and a full queue drops and counts rather than slowing the
shopper. Used by search and commerce; their events share one set of metrics per registry."""

from __future__ import annotations

import asyncio
import weakref

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

from kernel.contracts.events import ACTIVITY_TOPIC, Payload, encode_event, new_event
from kernel.eventlog.port import EventLog, OutgoingMessage
from kernel.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

BATCH_LINGER_S = 0.01  # lets a burst of events accumulate into one publish
RETRY_AFTER_FAILURE_S = 1.0


class ActivityMetrics:
    """One set of collectors per Prometheus registry (every publisher of a process shares it)."""

    _by_registry: weakref.WeakKeyDictionary[CollectorRegistry, ActivityMetrics] = weakref.WeakKeyDictionary()

    def __init__(self, registry: CollectorRegistry) -> None:
        self.activity_published = Counter(
            "emporium_activity_events_published_total",
            "Storefront activity events published",
            registry=registry,
        )
        self.activity_dropped = Counter(
            "emporium_activity_events_dropped_total",
            "Activity events dropped because the publish queue was full or the log refused them",
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
    """Fire-and-forget activity events: storefront requests never wait for the log.

    ``emit`` only enqueues (O(1), never blocks); one background task publishes in batches. When the queue
    is full (the log is slow or down) events are dropped and counted: analytics tolerate a gap, shoppers
    do not tolerate a slow search.
    """

    def __init__(
        self,
        event_log: EventLog,
        *,
        metrics: ActivityMetrics,
        producer: str = "storefront",
        max_queue: int = 10_000,
        max_batch: int = 500,
    ) -> None:
        self.event_log = event_log
        self.metrics = metrics
        self.producer = producer
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Payload, str]] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None

    def emit(self, payload: Payload, *, key: str) -> None:
        """Enqueue only: the envelope (id, timestamp) is built and encoded by the publishing task, off
        the request path (``occurred_at`` lags the search by at most the batch linger)."""
        try:
            self._queue.put_nowait((payload, key))
        except asyncio.QueueFull:
            self.metrics.activity_dropped.labels("queue_full").inc()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="activity-publisher")

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
            await self._publish(self._drain())

    def _drain(self) -> list[OutgoingMessage]:
        batch: list[OutgoingMessage] = []
        while len(batch) < self.max_batch:
            try:
                payload, key = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            batch.append(self._message(payload, key))
        return batch

    def _message(self, payload: Payload, key: str) -> OutgoingMessage:
        event = new_event(payload, key=key, revision=1, producer=self.producer)
        return OutgoingMessage(key, encode_event(event))

    async def _run(self) -> None:
        while True:
            payload, key = await self._queue.get()
            await asyncio.sleep(BATCH_LINGER_S)
            batch = [self._message(payload, key), *self._drain()]
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
