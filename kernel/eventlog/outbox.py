"""The transactional outbox: events written in the same transaction as the state change they describe,
and a relay that publishes the committed rows to the event log, then deletes them.

Why: publishing after COMMIT from the request path loses the event if the process dies in between; a
row committed with the change is published later by the relay (at least once; every event carries its
entity's revision, so projectors drop repeats). Used by inventory (stock movements) and commerce
(orders, purchases).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import NamedTuple, Protocol

import structlog

from kernel.eventlog.port import EventLog, OutgoingMessage
from kernel.tasks import cancel_and_wait

log = structlog.get_logger(__name__)


class OutboxEntry(NamedTuple):
    """A committed outbox row, read back by the relay."""

    id: int
    topic: str
    key: str
    value: bytes


class Outbox(Protocol):
    """What the relay needs from an outbox table."""

    async def outbox_fetch(self, limit: int) -> Sequence[OutboxEntry]: ...

    async def outbox_delete(self, ids: Sequence[int]) -> None: ...


class OutboxRelay:
    """Moves committed outbox rows to the event log, in id order, then deletes them."""

    def __init__(
        self,
        outbox: Outbox,
        event_log: EventLog,
        *,
        interval: float = 0.2,
        batch: int = 500,
        name: str = "inventory-outbox-relay",
    ) -> None:
        self.outbox, self.event_log, self.interval, self.batch = outbox, event_log, interval, batch
        self.name = name
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        self._wake.set()

    async def drain_once(self) -> int:
        rows = await self.outbox.outbox_fetch(self.batch)
        if not rows:
            return 0
        by_topic: dict[str, list[OutgoingMessage]] = {}
        for row in rows:
            by_topic.setdefault(row.topic, []).append(OutgoingMessage(row.key, row.value))
        for topic, messages in by_topic.items():
            await self.event_log.publish(topic, messages)
        await self.outbox.outbox_delete([row.id for row in rows])
        return len(rows)

    async def _run(self) -> None:
        while True:
            try:
                while await self.drain_once() >= self.batch:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the rows stay; try again next round
                log.warning("outbox relay failed; will retry", relay=self.name, error=repr(exc))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None
        with contextlib.suppress(Exception):
            await self.drain_once()
