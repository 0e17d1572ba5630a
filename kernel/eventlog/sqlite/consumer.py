"""A member of a consumer group over the SQLite log (protocol: ``kernel.eventlog.sqlite.groups``)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Literal

import structlog

from kernel.eventlog.port import Record, consumer_topics
from kernel.eventlog.sqlite import groups
from kernel.eventlog.sqlite.idle import UNKNOWN
from kernel.eventlog.sqlite.records import TopicPartition, begin_offset, read_from, top_record_id

if TYPE_CHECKING:
    from kernel.eventlog.sqlite.log import SqliteEventLog

log = structlog.get_logger(__name__)


class SqliteConsumer:
    """A member of a consumer group over the SQLite log."""

    def __init__(
        self,
        log: SqliteEventLog,
        topics: Sequence[str],
        group: str,
        *,
        start_from: Literal["earliest", "latest"] = "earliest",
    ) -> None:
        self.topics = consumer_topics(topics, start_from)
        self._log = log
        self.group = group
        self.start_from = start_from
        self.member_id = uuid.uuid4().hex
        self._conn = log.connection(f"eventlog-consumer-{group}")
        self._partition_counts: dict[str, int] = {}
        self._positions: dict[TopicPartition, int] = {}  # next offset to read, per owned partition
        self._polled: dict[TopicPartition, int] = {}  # positions after the last poll (commit target)
        self._replay_pending = False
        self._last_sync = 0.0
        self._needs_sync = True
        self._rr = 0
        self._idle_at: object = None  # (log's MAX(id), positions) of the last fetch that found nothing
        self._wake = asyncio.Event()  # set by an in-process publish to one of ``topics``
        self._heartbeat: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._running = False

    @property
    def assignment(self) -> frozenset[TopicPartition]:
        return frozenset(self._positions)

    # membership --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the group and wait (bounded) until this member holds its share of the partitions."""
        await self._log.start()
        for topic in self.topics:
            self._partition_counts[topic] = await self._log.topic_partitions(topic)
        self._running = True
        self._log.wakers.subscribe(self.topics, self._wake)
        deadline = time.monotonic() + self._log.session_timeout_s + 2 * self._log.heartbeat_interval_s
        async with self._lock:
            await self._sync_assignment(release_busy=True)
        while self._needs_sync and time.monotonic() < deadline:
            # Other members give partitions up at their next heartbeat or poll.
            await asyncio.sleep(min(0.1, self._log.heartbeat_interval_s))
            async with self._lock:
                await self._sync_assignment(release_busy=True)
        self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name=f"eventlog-hb-{self.group}")

    async def stop(self) -> None:
        """Leave the group without committing: uncommitted records go to the next owner."""
        if not self._running:
            return
        self._running = False
        self._log.wakers.unsubscribe(self.topics, self._wake)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        try:
            async with self._lock:
                await self._conn.run(partial(groups.leave, group=self.group, member=self.member_id))
        finally:
            self._positions.clear()
            self._polled.clear()
            await self._conn.close()

    async def _heartbeat_loop(self) -> None:
        """Keeps membership alive while the owner is busy, and hands idle partitions over.

        Like Kafka's background heartbeat plus revoke callback: partitions with a polled but
        uncommitted batch are kept until the next poll, so a batch in flight is never split.
        """
        while self._running:
            await asyncio.sleep(self._log.heartbeat_interval_s)
            try:
                async with self._lock:
                    if self._running:
                        await self._sync_assignment(release_busy=False)
            except sqlite3.Error as exc:  # a busy file must not kill the member; the next beat retries
                log.warning("eventlog.heartbeat_failed", group=self.group, error=str(exc))

    async def _sync_assignment(self, *, release_busy: bool) -> None:
        """Heartbeat, expire dead members, release partitions no longer ours and claim free ones.

        ``release_busy=False`` keeps undesired partitions that still have an uncommitted batch.
        Call with ``self._lock`` held.
        """
        me = groups.Membership(
            group=self.group,
            member=self.member_id,
            topics=self.topics,
            partition_counts=dict(self._partition_counts),
            session_ms=int(self._log.session_timeout_s * 1000),
            start_from=self.start_from,
        )
        known = frozenset(self._positions)
        busy = frozenset() if release_busy else frozenset(self._polled)
        assignment = await self._conn.run(partial(groups.sync_member, me=me, known=known, busy=busy))
        self._last_sync = time.monotonic()
        self._needs_sync = assignment.unsettled
        await self._adopt(assignment.starts)

    async def _adopt(self, starts: dict[TopicPartition, int | None]) -> None:
        """Read the partitions of a new assignment: kept ones from where we are, new ones from their start."""
        positions = {tp: self._positions[tp] if start is None else start for tp, start in starts.items()}
        new = set(positions) - set(self._positions)
        lost = set(self._positions) - set(positions)
        self._positions = positions
        for tp in lost:
            self._polled.pop(tp, None)
        if new or lost:
            log.debug("eventlog.assignment", group=self.group, assigned=sorted(positions), lost=sorted(lost))
        if self._replay_pending and new:
            await self._rewind(new)

    async def _rewind(self, partitions: Iterable[TopicPartition]) -> None:
        wanted = list(partitions)

        def _begins(conn: sqlite3.Connection) -> dict[TopicPartition, int]:
            return {(t, p): begin_offset(conn, t, p) for t, p in wanted}

        self._positions.update(await self._conn.run(_begins))

    async def seek_to_beginning(self) -> None:
        """Rewind every owned partition (and any partition claimed before the next poll)."""
        self._require_running()
        async with self._lock:
            self._replay_pending = True
            self._polled.clear()
            await self._rewind(list(self._positions))

    # reading -----------------------------------------------------------------------------------

    async def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:  # noqa: ASYNC109
        self._require_running()
        deadline = time.monotonic() + max(0.0, timeout)
        delay = 0.002
        while True:
            async with self._lock:
                if not self._running:
                    return []
                # A new poll ends the previous batch (committed or abandoned): hand over what we must.
                stale = time.monotonic() - self._last_sync >= 2 * self._log.heartbeat_interval_s
                if self._needs_sync or stale:
                    await self._sync_assignment(release_busy=True)
                self._wake.clear()
                records = await self._fetch(max_records) if self._positions else []
                if self._positions:
                    self._replay_pending = False
            if records:
                return records
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            # Woken at once by a publish in this process; other processes are seen within `delay`.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(delay, remaining))
            delay = min(delay * 2, 0.05)

    async def _fetch(self, max_records: int) -> list[Record]:
        order = sorted(self._positions)
        self._rr = (self._rr + 1) % len(order)
        order = order[self._rr :] + order[: self._rr]  # rotate so no partition starves
        positions = [(tp, self._positions[tp]) for tp in order]
        # An idle consumer polls every partition every few ms; when nothing of its topics was appended
        # since a fetch that found nothing at these same positions, the loop thread can tell.
        where = tuple(sorted(positions))
        idle_at = self._idle_at
        if isinstance(idle_at, tuple) and idle_at[1] == where:
            top = self._log.idle_watch.quiet_since(idle_at[0], self.topics)
            if top is not UNKNOWN:
                self._idle_at = (top, where)
                return []  # nothing of ours appended since the last fetch found nothing here

        def _read(conn: sqlite3.Connection) -> tuple[list[Record], dict[TopicPartition, int], object]:
            top = top_record_id(conn)
            if idle_at == (top, where):
                return [], {}, idle_at
            out, reached = read_from(conn, positions, max_records)
            return out, reached, None if out else (top, where)

        records, reached, self._idle_at = await self._conn.run(_read)
        self._positions.update(reached)
        self._polled.update(reached)
        return records

    async def commit(self) -> None:
        """Store the positions reached by ``poll`` for the partitions this member still owns."""
        self._require_running()
        async with self._lock:
            if not self._polled:
                return
            offsets = dict(self._polled)
            store = partial(groups.commit_offsets, group=self.group, member=self.member_id, offsets=offsets)
            written = await self._conn.run(store)
            if written < len(offsets):
                log.warning(
                    "eventlog.commit_partial",
                    group=self.group,
                    reason="partitions were reassigned; their records will be read again by the new owner",
                )
            for tp, offset in offsets.items():
                if self._polled.get(tp) == offset:
                    del self._polled[tp]

    def _require_running(self) -> None:
        if not self._running:
            raise RuntimeError("consumer is not started (call start()) or already stopped")
