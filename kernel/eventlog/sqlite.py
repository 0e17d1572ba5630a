"""Embedded event log: an append-only SQLite table with Kafka's model (topics, partitions, offsets, groups).

Why it looks like this:

* One file, WAL journal: readers never block the writer, and several processes (``serve`` with its
  in-process projectors, ``emporium feed import`` in another shell) can share the file. Writes use
  ``BEGIN IMMEDIATE`` and stay short; ``busy_timeout`` makes a competing writer wait instead of failing.
* ``synchronous=NORMAL`` by default: in WAL mode a commit survives a crash or kill of any process (the
  guarantee Kafka gives with its default page-cache flushing); only an OS crash or power loss can roll
  back the last few commits, and the file never corrupts. ``?synchronous=full`` fsyncs every commit for
  power-loss durability at the cost of one fsync per publish batch.
* sqlite3 calls block, so every connection lives on its own single-thread executor: the event loop keeps
  serving HTTP while a batch is written or read.
* The partition of a record is ``crc32(key) % partitions`` (stable across processes and restarts, unlike
  Python's salted ``hash``), so per-key order is per-partition order.
* Consumer groups: members register with a heartbeat; partitions are spread round-robin over live
  members. A member gives a partition up only at its next ``poll`` (after its batch was committed or
  abandoned) and a new owner claims it only once released or once the old member's heartbeat expired,
  so one partition is never read by two members at once. ``commit`` only writes offsets of partitions
  the member still owns: a member that lost a partition cannot move its offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, Literal, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import structlog

from kernel.eventlog.port import OutgoingMessage, Record, consumer_topics
from kernel.eventlog.retention import KEEP_ALL, Retention, RetentionPolicy
from kernel.eventlog.sqlite_retention import prune

log = structlog.get_logger(__name__)

T = TypeVar("T")
TopicPartition = tuple[str, int]

DEFAULT_PARTITIONS = 4
_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (
    name        TEXT PRIMARY KEY,
    partitions  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    id            INTEGER PRIMARY KEY,
    topic         TEXT NOT NULL,
    partition     INTEGER NOT NULL,
    "offset"      INTEGER NOT NULL,
    key           TEXT,
    value         BLOB NOT NULL,
    timestamp_ms  INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS records_position ON records (topic, partition, "offset");
CREATE TABLE IF NOT EXISTS group_offsets (
    grp          TEXT NOT NULL,
    topic        TEXT NOT NULL,
    partition    INTEGER NOT NULL,
    next_offset  INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_members (
    grp           TEXT NOT NULL,
    member        TEXT NOT NULL,
    topics        TEXT NOT NULL,
    heartbeat_ms  INTEGER NOT NULL,
    PRIMARY KEY (grp, member)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS partition_owners (
    grp        TEXT NOT NULL,
    topic      TEXT NOT NULL,
    partition  INTEGER NOT NULL,
    member     TEXT NOT NULL,
    PRIMARY KEY (grp, topic, partition)
) WITHOUT ROWID;
"""


UNKNOWN: Final = object()  # an answer that equals nothing


def partition_for(key: str, partitions: int) -> int:
    """Stable key -> partition mapping (crc32 is the same in every process and Python version)."""
    return zlib.crc32(key.encode()) % partitions


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Connection:
    """One sqlite3 connection confined to one worker thread; ``run`` executes a function there."""

    def __init__(self, path: Path, *, synchronous: str, busy_timeout_ms: int, name: str) -> None:
        self._path = path
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, timeout=self._busy_timeout_ms / 1000)
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA cache_size = -16000")  # 16 MB page cache per connection
        return conn

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = self._open()
        return fn(self._conn)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise RuntimeError("event log connection is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, fn)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, _close)
        self._executor.shutdown(wait=True)


@contextlib.contextmanager
def _write_txn(conn: sqlite3.Connection) -> Any:
    """``BEGIN IMMEDIATE`` takes the write lock up front, so a busy writer waits (busy_timeout)
    instead of failing on a read->write lock upgrade."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _ensure_topic(conn: sqlite3.Connection, topic: str, partitions: int) -> int:
    """Create ``topic`` if missing; return its partition count (the first creator's choice wins)."""
    row = conn.execute("SELECT partitions FROM topics WHERE name = ?", (topic,)).fetchone()
    if row is not None:
        return int(row[0])
    conn.execute("INSERT OR IGNORE INTO topics (name, partitions) VALUES (?, ?)", (topic, partitions))
    row = conn.execute("SELECT partitions FROM topics WHERE name = ?", (topic,)).fetchone()
    return int(row[0])


def _end_offset(conn: sqlite3.Connection, topic: str, partition: int) -> int:
    row = conn.execute(
        'SELECT MAX("offset") FROM records WHERE topic = ? AND partition = ?', (topic, partition)
    ).fetchone()
    return 0 if row[0] is None else int(row[0]) + 1


def _begin_offset(conn: sqlite3.Connection, topic: str, partition: int) -> int:
    row = conn.execute(
        'SELECT MIN("offset") FROM records WHERE topic = ? AND partition = ?', (topic, partition)
    ).fetchone()
    return 0 if row[0] is None else int(row[0])


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
        # Wakes in-process consumers of a topic as soon as a publish to it commits; other processes are
        # seen by polling. Per topic: a busy topic (storefront activity) must not wake every consumer.
        self._wakers: dict[str, set[asyncio.Event]] = {}
        self._watch: sqlite3.Connection | None = None  # the loop thread's own: see ``_quiet_since``
        self.retention = retention  # applied by ``_prune`` (kernel.eventlog.sqlite_retention)
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

    def connection(self, name: str) -> _Connection:
        return _Connection(
            self.path, synchronous=self.synchronous, busy_timeout_ms=self.busy_timeout_ms, name=name
        )

    # lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)

        def _create(conn: sqlite3.Connection) -> None:
            # executescript commits any open transaction first, so the script carries its own.
            conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")

        await self._conn.run(_create)
        self._started = True
        await self._prune()

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        await self._conn.close()

    async def ping(self) -> None:
        await self._conn.run(lambda conn: conn.execute("SELECT 1 FROM topics LIMIT 1").fetchall())

    # in-process notification -------------------------------------------------------------------

    def _quiet_since(self, since: object, topics: Sequence[str]) -> object:
        """The log's highest record id (None: empty) if no record of ``topics`` was appended after
        record id ``since``, else ``UNKNOWN``; read on the event-loop thread.

        Idle consumers poll every few milliseconds for records published by other processes; asking
        their worker threads each time cost the serving thread a GIL hand-off per poll and ~5% of a
        busy API server's CPU. Here one indexed MAX(id) answers when nothing was appended at all, and
        a scan of only the records appended since (a busy topic's last few milliseconds) answers when
        other topics grew. It never waits: in WAL mode a reader does not block on writers, and a busy
        file answers ``UNKNOWN`` (the caller then asks its thread as before). Exact because writers are
        serialized: a record committed later always has a higher id.
        """
        try:
            if self._watch is None:
                self._watch = sqlite3.connect(self.path, isolation_level=None, timeout=0)
            top = self._watch.execute("SELECT MAX(id) FROM records").fetchone()[0]
            if top == since:
                return top
            if not isinstance(since, int):  # the log was empty (None) or could not tell
                return UNKNOWN
            marks = ", ".join("?" * len(topics))
            newer = self._watch.execute(
                # ``+topic``: walk only the ids after ``since``; on the topic index SQLite would scan
                # every record of these topics (all of the catalog's, for an idle projector)
                f"SELECT 1 FROM records WHERE id > ? AND +topic IN ({marks}) LIMIT 1",
                (since, *topics),
            ).fetchone()
            return UNKNOWN if newer is not None else top
        except sqlite3.Error:
            return UNKNOWN

    def _subscribe(self, topics: Sequence[str], waker: asyncio.Event) -> None:
        for topic in topics:
            self._wakers.setdefault(topic, set()).add(waker)

    def _unsubscribe(self, topics: Sequence[str], waker: asyncio.Event) -> None:
        for topic in topics:
            self._wakers.get(topic, set()).discard(waker)

    def _notify(self, topic: str) -> None:
        for waker in self._wakers.get(topic, ()):
            waker.set()

    # publishing --------------------------------------------------------------------------------

    async def topic_partitions(self, topic: str) -> int:
        """Partition count of ``topic``, creating it with the default count when missing."""
        count = self._topics.get(topic)
        if count is None:
            default = self.partitions

            def _create(conn: sqlite3.Connection) -> int:
                with _write_txn(conn):
                    return _ensure_topic(conn, topic, default)

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
            by_partition.setdefault(partition_for(message.key, partitions), []).append(message)
        timestamp = _now_ms()

        def _append(conn: sqlite3.Connection) -> None:
            with _write_txn(conn):
                for partition, batch in by_partition.items():
                    start = _end_offset(conn, topic, partition)
                    conn.executemany(
                        'INSERT INTO records (topic, partition, "offset", key, value, timestamp_ms)'
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        [
                            (topic, partition, start + i, m.key, m.value, timestamp)
                            for i, m in enumerate(batch)
                        ],
                    )

        await self._conn.run(_append)
        self._notify(topic)
        if not self.retention.of(topic).forever and time.monotonic() >= self._next_prune:
            await self._prune()

    async def _prune(self) -> None:
        """Drop what the retention policy drops (at most once a prune interval; a busy file waits)."""
        if self.retention.bounded.forever:
            return
        self._next_prune = time.monotonic() + self.prune_interval_s
        try:
            deleted = await self._conn.run(lambda conn: prune(conn, self.retention, _now_ms()))
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

        def _lag(conn: sqlite3.Connection) -> int:
            committed = dict(
                conn.execute(
                    "SELECT partition, next_offset FROM group_offsets WHERE grp = ? AND topic = ?",
                    (group, topic),
                ).fetchall()
            )
            total = 0
            for partition in range(partitions):
                end = _end_offset(conn, topic, partition)
                begin = _begin_offset(conn, topic, partition)  # records before it fell out of retention
                total += max(0, end - max(begin, int(committed.get(partition, begin))))
            return total

        return await self._conn.run(_lag)

    async def committed(self, topic: str, group: str) -> dict[int, int]:
        """Committed next offsets of ``group`` per partition of ``topic`` (for tests and operators)."""
        return dict(
            await self._conn.run(
                lambda conn: conn.execute(
                    "SELECT partition, next_offset FROM group_offsets WHERE grp = ? AND topic = ?",
                    (group, topic),
                ).fetchall()
            )
        )


class SqliteConsumer:
    """A member of a consumer group over the SQLite log (see the module docstring for the protocol)."""

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

    async def start(self) -> None:
        """Join the group and wait (bounded) until this member holds its share of the partitions."""
        await self._log.start()
        for topic in self.topics:
            self._partition_counts[topic] = await self._log.topic_partitions(topic)
        self._running = True
        self._log._subscribe(self.topics, self._wake)
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
        self._log._unsubscribe(self.topics, self._wake)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        group, member = self.group, self.member_id

        def _leave(conn: sqlite3.Connection) -> None:
            with _write_txn(conn):
                conn.execute("DELETE FROM partition_owners WHERE grp = ? AND member = ?", (group, member))
                conn.execute("DELETE FROM group_members WHERE grp = ? AND member = ?", (group, member))

        try:
            async with self._lock:
                await self._conn.run(_leave)
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
        group, member, topics = self.group, self.member_id, self.topics
        counts = dict(self._partition_counts)
        session_ms = int(self._log.session_timeout_s * 1000)
        start_from = self.start_from
        known = set(self._positions)
        busy = set() if release_busy else set(self._polled)

        def _sync(conn: sqlite3.Connection) -> tuple[dict[TopicPartition, int | None], bool]:
            now = _now_ms()
            with _write_txn(conn):
                conn.execute(
                    "INSERT INTO group_members (grp, member, topics, heartbeat_ms) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (grp, member) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms",
                    (group, member, "\n".join(topics), now),
                )
                conn.execute(
                    "DELETE FROM group_members WHERE grp = ? AND heartbeat_ms < ?", (group, now - session_ms)
                )
                conn.execute(
                    "DELETE FROM partition_owners WHERE grp = ? AND member NOT IN"
                    " (SELECT member FROM group_members WHERE grp = ?)",
                    (group, group),
                )
                members = conn.execute(
                    "SELECT member, topics FROM group_members WHERE grp = ? ORDER BY member", (group,)
                ).fetchall()
                desired: set[TopicPartition] = set()
                for topic in topics:
                    subscribers = [m for m, t in members if topic in t.split("\n")]
                    index = subscribers.index(member)
                    desired.update((topic, p) for p in range(counts[topic]) if p % len(subscribers) == index)
                owned_sql = "SELECT topic, partition FROM partition_owners WHERE grp = ? AND member = ?"
                owned = {(t, p) for t, p in conn.execute(owned_sql, (group, member))}
                for topic, partition in owned - desired - busy:
                    conn.execute(
                        "DELETE FROM partition_owners WHERE grp = ? AND topic = ? AND partition = ?",
                        (group, topic, partition),
                    )
                for topic, partition in desired - owned:
                    conn.execute(
                        "INSERT OR IGNORE INTO partition_owners (grp, topic, partition, member)"
                        " VALUES (?, ?, ?, ?)",
                        (group, topic, partition, member),
                    )
                owned = {(t, p) for t, p in conn.execute(owned_sql, (group, member))}
                # Start positions for partitions we just got: committed offset, else earliest/latest.
                result: dict[TopicPartition, int | None] = {tp: None for tp in owned & known}
                for topic, partition in owned - known:
                    row = conn.execute(
                        "SELECT next_offset FROM group_offsets WHERE grp = ? AND topic = ? AND partition = ?",
                        (group, topic, partition),
                    ).fetchone()
                    if row is not None:
                        result[(topic, partition)] = int(row[0])
                    elif start_from == "latest":
                        result[(topic, partition)] = _end_offset(conn, topic, partition)
                    else:
                        result[(topic, partition)] = _begin_offset(conn, topic, partition)
                return result, owned != desired

        result, unsettled = await self._conn.run(_sync)
        self._last_sync = time.monotonic()
        self._needs_sync = unsettled
        positions: dict[TopicPartition, int] = {}
        for tp, start in result.items():
            positions[tp] = self._positions[tp] if start is None else start
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
            return {(t, p): _begin_offset(conn, t, p) for t, p in wanted}

        self._positions.update(await self._conn.run(_begins))

    async def seek_to_beginning(self) -> None:
        """Rewind every owned partition (and any partition claimed before the next poll)."""
        self._require_running()
        async with self._lock:
            self._replay_pending = True
            self._polled.clear()
            await self._rewind(list(self._positions))

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
            top = self._log._quiet_since(idle_at[0], self.topics)
            if top is not UNKNOWN:
                self._idle_at = (top, where)
                return []  # nothing of ours appended since the last fetch found nothing here

        def _read(conn: sqlite3.Connection) -> tuple[list[Record], dict[TopicPartition, int], object]:
            top = conn.execute("SELECT MAX(id) FROM records").fetchone()[0]
            if idle_at == (top, where):
                return [], {}, idle_at
            out: list[Record] = []
            reached: dict[TopicPartition, int] = {}  # next offset per partition read from
            budget = max_records
            for (topic, partition), start in positions:
                if budget <= 0:
                    break
                rows = conn.execute(
                    'SELECT "offset", key, value, timestamp_ms FROM records'
                    ' WHERE topic = ? AND partition = ? AND "offset" >= ? ORDER BY "offset" LIMIT ?',
                    (topic, partition, start, budget),
                ).fetchall()
                if rows:
                    out += [Record(topic, partition, o, k, v, ts) for o, k, v, ts in rows]
                    reached[(topic, partition)] = rows[-1][0] + 1
                    budget -= len(rows)
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
            group, member = self.group, self.member_id

            def _commit(conn: sqlite3.Connection) -> int:
                now = _now_ms()
                with _write_txn(conn):
                    cur = conn.executemany(
                        "INSERT INTO group_offsets (grp, topic, partition, next_offset, updated_ms)"
                        " SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM partition_owners"
                        "  WHERE grp = ? AND topic = ? AND partition = ? AND member = ?)"
                        " ON CONFLICT (grp, topic, partition) DO UPDATE"
                        " SET next_offset = excluded.next_offset, updated_ms = excluded.updated_ms",
                        [(group, t, p, o, now, group, t, p, member) for (t, p), o in offsets.items()],
                    )
                    return cur.rowcount

            written = await self._conn.run(_commit)
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


__all__ = ["SqliteConsumer", "SqliteEventLog", "partition_for"]
