"""The one consumer loop every projector runs, and the one way to publish envelopes.

Loop contract (at-least-once, poison-proof):

1. poll a batch;
2. decode each record; a record that is not a valid event is published to the dead-letter topic with
   the reason and its exact bytes, and the loop moves on (a poison message never stops a consumer);
3. await the handler with the decoded batch (each event with the Record it came from);
4. commit only after the handler returned. If it raises, nothing is committed: the same batch is
   retried with exponential backoff (the handler must be idempotent, which every projector is, since
   events carry per-entity revisions) until it succeeds or the processor is stopped.

Staged mode (``flush`` given): the handler only stages its writes (e.g. adds documents to a Tantivy
writer), and ``flush`` makes everything staged durable. Several polled batches are staged, then flushed
once and their offsets committed: while the previous batch is still being indexed in the engine's own
threads, the next one is polled and decoded, and one commit serves up to ``flush_every`` records. A flush
happens as soon as a poll comes back short of a full batch (the log is drained: a trickle of events is
never held back) or ``flush_every`` records wait. After any failure every staged batch is handed to the
handler again before the next flush, since the failed write may have dropped what was staged before it.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, NamedTuple

import structlog
from tenacity import AsyncRetrying, retry_if_not_exception_type, wait_exponential, wait_random

from kernel.contracts.events import (
    DEAD_LETTER_TOPIC,
    DeadLetter,
    Envelope,
    EventDecodeError,
    decode_event,
    encode_dead_letter,
    encode_event,
)
from kernel.eventlog.port import Consumer, EventLog, OutgoingMessage, Record

_base_log: structlog.typing.FilteringBoundLogger = structlog.get_logger(__name__)


def _logger(group: str, topics: Sequence[str]) -> structlog.typing.FilteringBoundLogger:
    return _base_log.bind(group=group, topics=list(topics))


class ConsumedEvent(NamedTuple):
    """A decoded event and the log position it was read from."""

    record: Record
    event: Envelope


BatchHandler = Callable[[Sequence[ConsumedEvent]], Awaitable[None]]
BatchFlush = Callable[[], Awaitable[None]]


@dataclass
class ProcessorStats:
    """Counters a metrics exporter can read at any time."""

    processed: int = 0  # events handed to the handler and committed
    dead_lettered: int = 0
    batches: int = 0
    handler_failures: int = 0
    last_commit_monotonic: float | None = None
    lag: dict[str, int] = field(default_factory=dict)  # per topic, refreshed by ``refresh_lag``


class _StopRequested(Exception):
    pass


class EventProcessor:
    """Runs ``handler`` over ``topics`` as a member of ``group`` until :meth:`stop` is called."""

    def __init__(
        self,
        log: EventLog,
        topics: Sequence[str],
        group: str,
        handler: BatchHandler,
        *,
        batch_size: int = 500,
        poll_timeout: float = 0.5,
        start_from: Literal["earliest", "latest"] = "earliest",
        dead_letter_topic: str = DEAD_LETTER_TOPIC,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 30.0,
        replay: bool = False,
        flush: BatchFlush | None = None,
        flush_every: int = 0,
    ) -> None:
        self.log = log
        self.topics = tuple(topics)
        self.group = group
        self.handler = handler
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self.start_from: Literal["earliest", "latest"] = start_from
        self.dead_letter_topic = dead_letter_topic
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.replay = replay
        self.flush = flush
        self.flush_every = max(flush_every, batch_size)
        self._staged: list[Sequence[ConsumedEvent]] = []  # handled (staged) batches not yet flushed
        self._staged_records = 0  # records polled since the last offset commit
        self._restage = False  # a staged write failed: hand every staged batch over again
        self.stats = ProcessorStats()
        self._stop = asyncio.Event()
        self.started = asyncio.Event()  # set once the consumer joined its group (before the first poll)
        self._log = _logger(group, self.topics)

    def stop(self) -> None:
        """Ask the loop to finish its current step and leave the group (no commit of unhandled work)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def refresh_lag(self) -> dict[str, int]:
        """Records not yet committed by this group, per topic (also kept in ``stats.lag``)."""
        self.stats.lag = {topic: await self.log.lag(topic, self.group) for topic in self.topics}
        return self.stats.lag

    async def run(self, stop_event: asyncio.Event | None = None) -> None:
        """Consume until stopped (``stop()`` or ``stop_event``); returns after leaving the group."""
        consumer = self.log.consumer(self.topics, self.group, start_from=self.start_from)
        await consumer.start()
        watcher = asyncio.create_task(self._watch(stop_event)) if stop_event is not None else None
        self.started.set()
        self._log.info("eventlog.processor_started")
        try:
            if self.replay:
                await consumer.seek_to_beginning()
            while not self._stop.is_set():
                # With staged work, only look for what is already there: flush now if nothing is.
                timeout = 0.0 if self._staged_records else self.poll_timeout
                try:
                    records = await consumer.poll(self.batch_size, timeout)
                except Exception as exc:  # e.g. a locked SQLite file or a broker hiccup: wait and retry
                    self._log.error("eventlog.poll_failed", error=repr(exc))
                    try:
                        await self._sleep_unless_stopped(1.0)
                    except _StopRequested:
                        break
                    continue
                try:
                    if records:
                        await self._process(consumer, records)
                    elif self._staged_records:
                        await self._flush_and_commit(consumer)
                except _StopRequested:
                    break
        finally:
            self._staged.clear()  # not committed: the group's next member reads it again
            self._staged_records = 0
            if watcher is not None:
                watcher.cancel()
            await consumer.stop()
            self._log.info(
                "eventlog.processor_stopped",
                processed=self.stats.processed,
                dead_lettered=self.stats.dead_lettered,
            )

    async def _watch(self, stop_event: asyncio.Event) -> None:
        await stop_event.wait()
        self._stop.set()

    async def _process(self, consumer: Consumer, records: list[Record]) -> None:
        events: list[ConsumedEvent] = []
        poison: list[OutgoingMessage] = []
        for record in records:
            try:
                events.append(ConsumedEvent(record, decode_event(record.value)))
            except EventDecodeError as exc:
                poison.append(self._dead_letter(record, str(exc)))
            except Exception as exc:  # a decoder bug must not stop the consumer either
                poison.append(self._dead_letter(record, f"unexpected decode failure: {exc!r}"))
        if poison:
            # Durably parked before the commit below moves past them.
            await self._retrying("dead_letter", lambda: self.log.publish(self.dead_letter_topic, poison))
            self.stats.dead_lettered += len(poison)
        if self.flush is None:
            if events:
                await self._retrying("handler", lambda: self.handler(events))
            await self._commit(consumer, len(events))
            return
        self._staged.append(events)
        self._staged_records += len(records)
        if events:
            await self._retrying("handler", self._stage_newest)
        if len(records) < self.batch_size or self._staged_records >= self.flush_every:
            await self._flush_and_commit(consumer)

    async def _stage_newest(self) -> None:
        batches = self._staged if self._restage else self._staged[-1:]
        self._restage = True  # cleared only if every batch was handed over
        for batch in batches:
            if batch:
                await self.handler(batch)
        self._restage = False

    async def _flush_staged(self) -> None:
        assert self.flush is not None
        if self._restage:
            for batch in self._staged:
                if batch:
                    await self.handler(batch)
        self._restage = True
        await self.flush()
        self._restage = False

    async def _flush_and_commit(self, consumer: Consumer) -> None:
        await self._retrying("handler", self._flush_staged)
        await self._commit(consumer, sum(len(batch) for batch in self._staged))
        self._staged.clear()
        self._staged_records = 0

    async def _commit(self, consumer: Consumer, events: int) -> None:
        await self._retrying("commit", consumer.commit)
        self.stats.processed += events
        self.stats.batches += 1
        self.stats.last_commit_monotonic = time.monotonic()

    async def _retrying(self, step: str, action: Callable[[], Awaitable[None]]) -> None:
        """Run ``action`` until it succeeds; back off exponentially; give up only on stop."""
        retrying = AsyncRetrying(
            wait=wait_exponential(multiplier=self.retry_initial_s, max=self.retry_max_s)
            + wait_random(0, self.retry_initial_s),
            retry=retry_if_not_exception_type(_StopRequested),
            sleep=self._sleep_unless_stopped,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                try:
                    await action()
                except Exception as exc:
                    if step == "handler":
                        self.stats.handler_failures += 1
                    self._log.error(
                        "eventlog.batch_failed",
                        step=step,
                        attempt=attempt.retry_state.attempt_number,
                        error=repr(exc),
                        exc_info=attempt.retry_state.attempt_number == 1,
                    )
                    raise

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except TimeoutError:
            return
        raise _StopRequested

    def _dead_letter(self, record: Record, reason: str) -> OutgoingMessage:
        self._log.warning(
            "eventlog.dead_letter",
            reason=reason,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
        letter = DeadLetter(
            reason=reason,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value_b64=base64.b64encode(record.value).decode("ascii"),
            group=self.group,
            failed_at=datetime.now(UTC),
        )
        key = record.key if record.key is not None else f"{record.topic}/{record.partition}"
        return OutgoingMessage(key, encode_dead_letter(letter))


async def run_consumer(
    log: EventLog,
    topics: Sequence[str],
    group: str,
    handler: BatchHandler,
    *,
    batch_size: int = 500,
    stop_event: asyncio.Event | None = None,
    start_from: Literal["earliest", "latest"] = "earliest",
    dead_letter_topic: str = DEAD_LETTER_TOPIC,
) -> EventProcessor:
    """Run an :class:`EventProcessor` until ``stop_event`` is set; return it (for its stats)."""
    processor = EventProcessor(
        log,
        topics,
        group,
        handler,
        batch_size=batch_size,
        start_from=start_from,
        dead_letter_topic=dead_letter_topic,
    )
    await processor.run(stop_event)
    return processor


async def publish_events(log: EventLog, events: Sequence[Envelope]) -> None:
    """Publish envelopes to their topics (key = entity key), keeping their order per key."""
    by_topic: dict[str, list[OutgoingMessage]] = {}
    for event in events:
        by_topic.setdefault(event.topic, []).append(OutgoingMessage(event.key, encode_event(event)))
    if len(by_topic) == 1:
        ((topic, messages),) = by_topic.items()
        await log.publish(topic, messages)
    elif by_topic:
        await asyncio.gather(*(log.publish(topic, messages) for topic, messages in by_topic.items()))


__all__ = [
    "BatchFlush",
    "BatchHandler",
    "ConsumedEvent",
    "EventProcessor",
    "ProcessorStats",
    "publish_events",
    "run_consumer",
]


async def wait_caught_up(
    lag: Callable[[], Awaitable[int]],
    task: asyncio.Task[None] | None,
    *,
    what: str,
    poll_s: float = 0.05,
    timeout_s: float | None = None,
) -> None:
    """Return once ``lag()`` (records not yet committed by a consumer group) is 0; re-raise the crash
    of the ``task`` running that consumer, or fail if it ended first, or after ``timeout_s``."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        if task is not None and task.done():
            task.result()  # re-raise a crash
            raise RuntimeError(f"{what} stopped before catching up")
        if await lag() == 0:
            return
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"{what} still behind after {timeout_s}s")
        await asyncio.sleep(poll_s)
