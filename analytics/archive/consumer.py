"""The archive consumer: activity events from the log into the lake, exactly once per event.

Records are buffered per log partition and hour until a size or age threshold, then written as one file
group per partition (``analytics.archive.lake``) and only then committed. Exactly once across crashes:

* a crash before the files are complete leaves no complete group (the next start deletes the pieces) and
  no commit: the records are read and written again;
* a crash after the files but before the commit leaves a complete group whose name says which offsets it
  holds: the next start reads those records again and skips them.

Several members may share the group (``serve`` in-process or ``emporium project``, and the one-shot
``catch_up`` that ``analytics run`` starts): a member buffers only partitions it owns, drops what it
buffered for a partition the group hands to another (that member reads it again from the last commit),
and recovers a partition (``Lake.recover``) when it gains it. Ownership moves only inside ``poll``, never
while a member writes (on Kafka, a rebalance first waits ``rebalance_wait_s`` for the batch in flight).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from tqdm import tqdm

from analytics.archive.lake import Lake, PlannedFile, live_file_name
from analytics.archive.rows import RowBuffer, UndecodableEvent, split_by_hour
from kernel.contracts.events import ACTIVITY_TOPIC
from kernel.eventlog.port import Consumer, EventLog, Record

log = structlog.get_logger(__name__)

ARCHIVE_GROUP = "analytics.archive"
MAX_ROWS = 100_000  # rows buffered before a flush: files of a few MB, ~50 MB of buffered events at most
MAX_AGE_S = 60.0  # a trickle of live events still reaches the lake within a minute
POLL_RECORDS = 5_000


@dataclass
class _Pending:
    """What one log partition contributed since the last flush."""

    first: int
    last: int
    events: int = 0
    rows: RowBuffer = field(default_factory=RowBuffer)


@dataclass
class ArchiveStats:
    events: int = 0  # records archived (read, decoded, written and committed) by this member
    rows: int = 0
    files: int = 0
    skipped: int = 0  # records already in the lake (read again after a crash)
    undecodable: int = 0


class Archiver:
    """One member of ``group`` over ``topics``, writing into ``lake``. ``run`` follows the log until
    stopped; ``catch_up`` stops at its end."""

    def __init__(
        self,
        event_log: EventLog,
        lake: Lake,
        *,
        group: str = ARCHIVE_GROUP,
        topics: Sequence[str] = (ACTIVITY_TOPIC,),
        max_rows: int = MAX_ROWS,
        max_age_s: float = MAX_AGE_S,
        poll_records: int = POLL_RECORDS,
    ) -> None:
        self.event_log = event_log
        self.lake = lake
        self.group = group
        self.topics = tuple(topics)
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self.poll_records = poll_records
        self.stats = ArchiveStats()
        self._archived: dict[tuple[str, int], int] = {}  # last offset in the lake, per owned partition
        self._owned: frozenset[tuple[str, int]] = frozenset()
        self._pending: dict[tuple[str, int], _Pending] = {}
        self._pending_rows = 0
        self._pending_events = 0
        self._oldest: float | None = None  # monotonic time of the oldest pending record
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    async def open(self) -> Consumer:
        """Join the group; the partitions it gives are made ready (``Lake.recover``)."""
        consumer = self.event_log.consumer(self.topics, self.group, start_from="earliest")
        await consumer.start()
        await self._follow_assignment(consumer)
        return consumer

    async def poll(self, consumer: Consumer, timeout: float) -> list[Record]:  # noqa: ASYNC109
        """The next records, after following any change of the partitions this member owns."""
        records = await consumer.poll(self.poll_records, timeout)
        await self._follow_assignment(consumer)
        return records

    async def _follow_assignment(self, consumer: Consumer) -> None:
        """Drop what is buffered for partitions another member took (it reads them again from the last
        commit); recover the partitions newly ours and learn which of their offsets the lake holds."""
        owned = frozenset((topic, partition) for topic, partition in consumer.assignment)
        for key in self._owned - owned:
            self._drop(key, "partition moved to another member")
            self._archived.pop(key, None)
        gained = owned - self._owned
        self._owned = owned
        if gained:
            self._archived.update(await asyncio.to_thread(self.lake.recover, gained))

    def _drop(self, key: tuple[str, int], reason: str) -> None:
        pending = self._pending.pop(key, None)
        if pending is None:
            return
        log.info(
            "archive: buffered records left to be read again",
            partition=key,
            events=pending.events,
            reason=reason,
        )
        self._pending_events -= pending.events
        self._pending_rows -= pending.rows.rows
        if not self._pending:
            self._oldest = None

    async def run(self) -> None:
        """Follow the log until ``stop``; what is pending then is flushed and committed."""
        consumer = await self.open()
        try:
            while not self._stop.is_set():
                age = 0.0 if self._oldest is None else time.monotonic() - self._oldest
                records = await self.poll(consumer, max(0.0, min(1.0, self.max_age_s - age)))
                self.take(records)
                if self._due() or (records and not self._pending):  # all already archived: commit
                    await self.flush(consumer)
            await self.flush(consumer)
        finally:
            await consumer.stop()

    def _due(self) -> bool:
        if self._pending_rows >= self.max_rows:
            return True
        return self._oldest is not None and time.monotonic() - self._oldest >= self.max_age_s

    def take(self, records: Sequence[Record]) -> int:
        """Buffer the rows of ``records``, skipping offsets the lake already holds; returns rows added."""
        added = 0
        for record in records:
            key = (record.topic, record.partition)
            if record.offset <= self._archived.get(key, -1):
                self.stats.skipped += 1
                continue
            pending = self._pending.get(key)
            if pending is not None and record.offset <= pending.last:
                self._drop(key, "the log rewound this partition")  # e.g. lost and regained in one poll
                pending = None
            if pending is None:
                pending = self._pending[key] = _Pending(record.offset, record.offset)
            pending.last = record.offset
            pending.events += 1
            self._pending_events += 1
            if self._oldest is None:
                self._oldest = time.monotonic()
            try:
                rows = pending.rows.add(record.value)
            except UndecodableEvent as exc:  # projectors dead-letter it; the archive just leaves it out
                self.stats.undecodable += 1
                log.warning("archive: undecodable record left out", offset=record.offset, error=str(exc))
                continue
            added += rows
            self._pending_rows += rows
        return added

    async def flush(self, consumer: Consumer) -> None:
        """Write every pending partition's file group durably, then commit the offsets."""
        if self._oldest is None and not self._pending:
            await consumer.commit()  # records that made no rows, or only skipped ones
            return
        for (topic, partition), pending in sorted(self._pending.items()):
            if pending.rows.rows:
                await asyncio.to_thread(self._write, topic, partition, pending)
            self._archived[(topic, partition)] = pending.last
        await consumer.commit()
        self.stats.events += self._pending_events
        self.stats.rows += self._pending_rows
        self._pending.clear()
        self._pending_rows = self._pending_events = 0
        self._oldest = None

    def _write(self, topic: str, partition: int, pending: _Pending) -> None:
        hours = split_by_hour(pending.rows.to_table())
        first, last = pending.first, pending.last
        files = [
            PlannedFile(hour, live_file_name(topic, partition, first, last, n, len(hours)), table)
            for n, (hour, table) in enumerate(hours, start=1)
        ]
        self.lake.write_group(files)
        self.stats.files += len(files)


SETTLE_S = 2.0  # catch_up: the log counts as drained after this long with nothing to read
JOIN_TIMEOUT_S = 30.0  # catch_up: how long to wait for the group's lag to clear (see ``wait_s``)


async def catch_up(
    event_log: EventLog,
    lake_url: str,
    *,
    progress: bool = False,
    group: str = ARCHIVE_GROUP,
    topics: Sequence[str] = (ACTIVITY_TOPIC,),
    max_rows: int = MAX_ROWS,
    poll_records: int = POLL_RECORDS,
    settle_s: float = SETTLE_S,
    wait_s: float = JOIN_TIMEOUT_S,
    notify: Callable[[str], None] | None = None,
) -> int:
    """Archive the activity topic up to its end, then return the number of events archived by this call.

    What ``analytics run`` does first. Partitions held by another member of the group (a running ``serve``
    with in-process projectors) are left to it: it keeps them while it buffers, and writes and commits
    them within its flush age (``archive_flush_s``). So while the group still lags, this waits, up to
    ``wait_s`` from the start (give it that flush age and a margin), for the lag to clear: returning
    earlier would let the jobs run on a lake missing the newest events (those shoppers just made).
    """
    lake = Lake(lake_url)
    archiver = Archiver(
        event_log,
        lake,
        group=group,
        topics=topics,
        max_rows=max_rows,
        max_age_s=float("inf"),
        poll_records=poll_records,
    )
    total = sum([await event_log.lag(topic, group) for topic in archiver.topics])
    bar = _progress_bar(total) if progress else None
    consumer = await archiver.open()
    try:
        started = idle_since = time.monotonic()
        seen = 0
        while True:
            records = await archiver.poll(consumer, 0.2)
            if records:
                archiver.take(records)
                seen += len(records)
                idle_since = time.monotonic()
                if bar is not None:
                    bar.update(len(records))
                if archiver.pending_rows >= max_rows:
                    await archiver.flush(consumer)
                continue
            await archiver.flush(consumer)
            if sum([await event_log.lag(topic, group) for topic in archiver.topics]) == 0:
                break
            idle = time.monotonic() - idle_since
            if idle >= settle_s and time.monotonic() - started >= wait_s:
                break
            if idle >= settle_s and notify is not None:
                notify(f"waiting (up to {wait_s:.0f}s) for another archive member to flush what it holds")
                notify = None
    finally:
        await consumer.stop()
        if bar is not None:
            bar.close()
    stats = archiver.stats
    log.info(
        "archive caught up",
        events=stats.events,
        rows=stats.rows,
        files=stats.files,
        already_archived=stats.skipped,
        undecodable=stats.undecodable,
    )
    return stats.events


def _progress_bar(total: int) -> tqdm[Any]:

    return tqdm(total=total, unit="ev", unit_scale=True, desc="archive", dynamic_ncols=True)
