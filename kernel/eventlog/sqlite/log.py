"""``SqliteEventLog``: the file, its topics, publishing, and the group lag operators read."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import structlog

from kernel.eventlog.port import OutgoingMessage
from kernel.eventlog.retention import KEEP_ALL, Retention, RetentionPolicy
from kernel.eventlog.sqlite import records
from kernel.eventlog.sqlite.connection import WorkerConnection, now_ms, write_txn
from kernel.eventlog.sqlite.consumer import SqliteConsumer
from kernel.eventlog.sqlite.idle import IdleWatch, TopicWakers
from kernel.eventlog.sqlite.retention import prune
from kernel.eventlog.sqlite.schema import create_schema

log = structlog.get_logger(__name__)

DEFAULT_PARTITIONS = 4


class SqliteEventLog:
    """The embedded default adapter of :class:`kernel.eventlog.port.EventLog`."""

    def __init__(
        self,
        path: str | Path,
        *,
        partitions: int = DEFAULT_PARTITIONS,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout_ms: int = 10_000,
        session_timeout_s: float = 10.0,
        heartbeat_interval_s: float = 1.0,
        retention: RetentionPolicy = KEEP_ALL,
        prune_interval_s: float = 60.0,
    ) -> None:
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        if synchronous.upper() not in {"NORMAL", "FULL"}:
            raise ValueError("synchronous must be NORMAL or FULL")
        self.path = Path(path)
        self.partitions = partitions
        self.synchronous = synchronous.upper()
        self.busy_timeout_ms = busy_timeout_ms
        self.session_timeout_s = session_timeout_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self._conn = self.connection("eventlog-writer")
        self._topics: dict[str, int] = {}
        self._started = False
        self.wakers = TopicWakers()
        self.idle_watch = IdleWatch(self.path)
        self.retention = retention  # applied by ``_prune`` (kernel.eventlog.sqlite.retention)
        self.prune_interval_s = prune_interval_s
        self._next_prune = 0.0

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SqliteEventLog:
        """``sqlite:///relative/or/absolute/path.db[?partitions=N&synchronous=full]``."""
        parts = urlsplit(url)
        if parts.scheme != "sqlite":
            raise ValueError(f"not a sqlite URL: {url!r}")
        if parts.netloc:
            raise ValueError(f"sqlite URL must look like sqlite:///path/events.db, got {url!r}")
        # Same convention as kernel.database: sqlite:///rel/path -> rel/path, sqlite:////abs -> /abs
        raw = unquote(parts.path)
        path = raw[1:] if raw.startswith("/") else raw
        if not path:
            raise ValueError(f"sqlite URL has no file path: {url!r}")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        kwargs: dict[str, Any] = {}
        if "partitions" in query:
            kwargs["partitions"] = int(query["partitions"])
        if "synchronous" in query:
            kwargs["synchronous"] = query["synchronous"].upper()
        if "busy_timeout_ms" in query:
            kwargs["busy_timeout_ms"] = int(query["busy_timeout_ms"])
        return cls(path, **kwargs, **options)

    def connection(self, name: str) -> WorkerConnection:
        return WorkerConnection(
            self.path, synchronous=self.synchronous, busy_timeout_ms=self.busy_timeout_ms, name=name
        )

    # lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await self._conn.run(create_schema)
        self._started = True
        await self._prune()

    async def close(self) -> None:
        self.idle_watch.close()
        await self._conn.close()

    async def ping(self) -> None:
        await self._conn.run(lambda conn: conn.execute("SELECT 1 FROM topics LIMIT 1").fetchall())

    # publishing --------------------------------------------------------------------------------

    async def topic_partitions(self, topic: str) -> int:
        """Partition count of ``topic``, creating it with the default count when missing."""
        count = self._topics.get(topic)
        if count is None:
            default = self.partitions

            def _create(conn: sqlite3.Connection) -> int:
                with write_txn(conn):
                    return records.ensure_topic(conn, topic, default)

            count = await self._conn.run(_create)
            self._topics[topic] = count
        return count

    async def publish(self, topic: str, messages: Sequence[OutgoingMessage]) -> None:
        """Append all ``messages`` in one transaction; offsets are assigned under the write lock."""
        if not messages:
            return
        partitions = await self.topic_partitions(topic)
        by_partition: dict[int, list[OutgoingMessage]] = {}
        for message in messages:
            by_partition.setdefault(records.partition_for(message.key, partitions), []).append(message)
        timestamp = now_ms()

        def _append(conn: sqlite3.Connection) -> None:
            with write_txn(conn):
                records.append(conn, topic, by_partition, timestamp)

        await self._conn.run(_append)
        self.wakers.notify(topic)
        if not self.retention.of(topic).forever and time.monotonic() >= self._next_prune:
            await self._prune()

    async def _prune(self) -> None:
        """Drop what the retention policy drops (at most once a prune interval; a busy file waits)."""
        if self.retention.bounded.forever:
            return
        self._next_prune = time.monotonic() + self.prune_interval_s
        try:
            deleted = await self._conn.run(lambda conn: prune(conn, self.retention, now_ms()))
        except sqlite3.Error as exc:
            log.warning("eventlog.prune_failed", error=str(exc))
            return
        if deleted:
            log.info("eventlog.pruned", records=deleted)

    async def retention_of(self, topic: str) -> Retention:
        return self.retention.of(topic)

    # consuming ---------------------------------------------------------------------------------

    def consumer(
        self,
        topics: Sequence[str],
        group: str,
        *,
        start_from: Literal["earliest", "latest"] = "earliest",
    ) -> SqliteConsumer:
        return SqliteConsumer(self, topics, group, start_from=start_from)

    async def lag(self, topic: str, group: str) -> int:
        partitions = await self.topic_partitions(topic)
        return await self._conn.run(partial(records.lag, topic=topic, partitions=partitions, group=group))

    async def committed(self, topic: str, group: str) -> dict[int, int]:
        """Committed next offsets of ``group`` per partition of ``topic`` (for tests and operators)."""
        return await self._conn.run(partial(records.committed_offsets, topic=topic, group=group))
