"""Running a projection: one idempotent handler in one consumer group, as a background task with metrics.

Every runner is an ``kernel.eventlog.processing.EventProcessor`` (poll -> decode/dead-letter -> handle ->
commit, retrying a failed batch forever), plus Prometheus metrics on the runtime's registry. Contexts
bring the projections (``search.projectors``, ``read_models``); this module knows none of them.

Unique groups (``unique_group``) are never resumed; Kafka expires their offsets after
``offsets.retention.minutes``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kernel.contracts.events import Envelope
from kernel.eventlog.port import EventLog
from kernel.eventlog.processing import ConsumedEvent, EventProcessor, wait_caught_up

log = structlog.get_logger(__name__)

# Records per Tantivy commit when a projection stages its writes (see ``EventProcessor``): catching up
# takes a few commits instead of one per polled batch (measured: eight commits of 5,000 documents cost
# ~40% more CPU than one of 40,000, mostly segment flushes and merges); a drained log flushes at once.
STAGED_COMMIT_EVENTS = 20_000


def unique_group(prefix: str) -> str:
    return f"{prefix}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


class ProjectorMetrics:
    """One set of collectors per Prometheus registry (the app and each CLI process have their own)."""

    _by_registry: weakref.WeakKeyDictionary[CollectorRegistry, ProjectorMetrics] = weakref.WeakKeyDictionary()

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "emporium_projector_events_total",
            "Events projected into read models",
            ["projector", "type"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "emporium_projector_batch_seconds",
            "Time to project one batch (before its commit)",
            ["projector"],
            registry=registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.lag = Gauge(
            "emporium_projector_lag",
            "Records not yet committed by the projector's group",
            ["projector", "topic"],
            registry=registry,
        )
        self.event_age = Gauge(
            "emporium_projector_event_age_seconds",
            "Age of the newest event of the last batch when it was projected: how late read models are",
            ["projector"],
            registry=registry,
        )
        self.dead_letters = Gauge(
            "emporium_projector_dead_letters",
            "Messages this process sent to the dead-letter topic",
            ["projector"],
            registry=registry,
        )

    @classmethod
    def of(cls, registry: CollectorRegistry) -> ProjectorMetrics:
        metrics = cls._by_registry.get(registry)
        if metrics is None:
            metrics = cls._by_registry[registry] = cls(registry)
        return metrics


class EventHandler(Protocol):
    """What a projection offers: a name, its topics and an idempotent batch handler."""

    @property
    def name(self) -> str: ...

    @property
    def topics(self) -> tuple[str, ...]: ...

    async def handle(self, events: Sequence[Envelope]) -> None: ...


@runtime_checkable
class StagingHandler(EventHandler, Protocol):
    """A projection whose writes can be staged over several batches and made durable at once."""

    @property
    def staging(self) -> bool:
        """Whether ``stage`` + ``flush`` apply (e.g. only with an index that stages writes)."""
        ...

    async def stage(self, events: Sequence[Envelope]) -> None: ...

    async def flush(self) -> None: ...


class ProjectorTask:
    """One projection in one consumer group, as a background task with metrics.

    A projection that stages its writes (``StagingHandler`` with ``staging`` true) runs in the processor's
    staged mode: one durable write and offset commit per ``commit_every`` records or drained log.
    """

    def __init__(
        self,
        event_log: EventLog,
        projection: EventHandler,
        *,
        group: str,
        metrics: ProjectorMetrics,
        replay: bool = False,
        batch_size: int = 1000,
        poll_timeout: float = 0.5,
        lag_interval_s: float = 5.0,
        on_batch: Callable[[int], None] | None = None,
        linger_s: float = 0.0,
        commit_every: int = STAGED_COMMIT_EVENTS,
    ) -> None:
        self.projection = projection
        self.linger_s = linger_s  # after a partial batch, wait: the next poll then takes a bigger batch
        self.batch_size = batch_size
        self.group = group
        self.metrics = metrics
        self.lag_interval_s = lag_interval_s
        self.on_batch = on_batch
        self._staging = isinstance(projection, StagingHandler) and projection.staging
        self._partial = False  # the last batch handed over was not a full one
        self.processor = EventProcessor(
            event_log,
            projection.topics,
            group,
            self._handle,
            batch_size=batch_size,
            poll_timeout=poll_timeout,
            replay=replay,
            flush=self._flush if self._staging else None,
            flush_every=commit_every,
        )
        self._task: asyncio.Task[None] | None = None
        self._lag_task: asyncio.Task[None] | None = None

    async def _handle(self, consumed: Sequence[ConsumedEvent]) -> None:
        started = time.perf_counter()
        events = [c.event for c in consumed]
        projection = self.projection
        if self._staging:
            assert isinstance(projection, StagingHandler)
            await projection.stage(events)
        else:
            await projection.handle(events)
        name = projection.name
        self.metrics.batch_seconds.labels(name).observe(time.perf_counter() - started)
        if events:
            newest = max(event.occurred_at for event in events).timestamp()
            self.metrics.event_age.labels(name).set(max(0.0, time.time() - newest))
        counts: dict[str, int] = {}
        for c in consumed:
            counts[c.event.type] = counts.get(c.event.type, 0) + 1
        for event_type, count in counts.items():
            self.metrics.events.labels(name, event_type).inc(count)
        if self.on_batch is not None:
            self.on_batch(len(consumed))
        self._partial = len(consumed) < self.batch_size
        if self._partial and not self._staging:
            await self._linger()

    async def _flush(self) -> None:
        assert isinstance(self.projection, StagingHandler)
        await self.projection.flush()
        if self._partial:
            await self._linger()

    async def _linger(self) -> None:
        if self.linger_s:
            await asyncio.sleep(self.linger_s)

    async def refresh_lag(self) -> int:
        lags = await self.processor.refresh_lag()
        for topic, lag in lags.items():
            self.metrics.lag.labels(self.projection.name, topic).set(lag)
        self.metrics.dead_letters.labels(self.projection.name).set(self.processor.stats.dead_lettered)
        return sum(lags.values())

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.processor.run(), name=f"projector:{self.group}")
            self._lag_task = asyncio.create_task(self._report_lag(), name=f"lag:{self.group}")

    async def _report_lag(self) -> None:
        while True:
            await asyncio.sleep(self.lag_interval_s)
            try:
                await self.refresh_lag()
            except Exception as exc:  # telemetry only
                log.debug("projector lag unavailable", group=self.group, error=repr(exc))

    async def wait_caught_up(self, *, poll_s: float = 0.05, timeout_s: float | None = None) -> None:
        """Return once the group has committed everything published so far (lag 0)."""
        await wait_caught_up(
            self.refresh_lag, self._task, what=f"projector {self.group}", poll_s=poll_s, timeout_s=timeout_s
        )

    async def stop(self) -> None:
        self.processor.stop()
        for task in (self._lag_task, self._task):
            if task is None:
                continue
            if task is self._lag_task:
                task.cancel()
            try:
                await asyncio.wait_for(asyncio.shield(task), 10.0)
            except asyncio.CancelledError:
                pass
            except TimeoutError:
                task.cancel()
            except Exception:
                log.exception("projector task failed", group=self.group)
        self._task = self._lag_task = None

    async def run_until_stopped(self) -> None:
        self.start()
        assert self._task is not None
        await self._task
