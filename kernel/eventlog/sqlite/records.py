"""Topics, offsets and records: appending, reading from positions, and how far a group is behind.

Every function takes the connection of the calling worker thread; writers call inside ``write_txn``.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Mapping, Sequence

from kernel.eventlog.port import OutgoingMessage, Record

TopicPartition = tuple[str, int]


def partition_for(key: str, partitions: int) -> int:
    """Stable key -> partition mapping (crc32 is the same in every process and Python version)."""
    return zlib.crc32(key.encode()) % partitions


def ensure_topic(conn: sqlite3.Connection, topic: str, partitions: int) -> int:
    """Create ``topic`` if missing; return its partition count (the first creator's choice wins)."""
    row = conn.execute("SELECT partitions FROM topics WHERE name = ?", (topic,)).fetchone()
    if row is not None:
        return int(row[0])
    conn.execute("INSERT OR IGNORE INTO topics (name, partitions) VALUES (?, ?)", (topic, partitions))
    row = conn.execute("SELECT partitions FROM topics WHERE name = ?", (topic,)).fetchone()
    return int(row[0])


def end_offset(conn: sqlite3.Connection, topic: str, partition: int) -> int:
    row = conn.execute(
        'SELECT MAX("offset") FROM records WHERE topic = ? AND partition = ?', (topic, partition)
    ).fetchone()
    return 0 if row[0] is None else int(row[0]) + 1


def begin_offset(conn: sqlite3.Connection, topic: str, partition: int) -> int:
    row = conn.execute(
        'SELECT MIN("offset") FROM records WHERE topic = ? AND partition = ?', (topic, partition)
    ).fetchone()
    return 0 if row[0] is None else int(row[0])


def top_record_id(conn: sqlite3.Connection) -> int | None:
    """The highest record id (None: the log is empty); a later commit always has a higher one."""
    top: int | None = conn.execute("SELECT MAX(id) FROM records").fetchone()[0]
    return top


def append(
    conn: sqlite3.Connection,
    topic: str,
    by_partition: Mapping[int, Sequence[OutgoingMessage]],
    timestamp_ms: int,
) -> None:
    """Append each partition's batch after its last offset; call under the write lock."""
    for partition, batch in by_partition.items():
        start = end_offset(conn, topic, partition)
        conn.executemany(
            'INSERT INTO records (topic, partition, "offset", key, value, timestamp_ms)'
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(topic, partition, start + i, m.key, m.value, timestamp_ms) for i, m in enumerate(batch)],
        )


def read_from(
    conn: sqlite3.Connection, positions: Sequence[tuple[TopicPartition, int]], max_records: int
) -> tuple[list[Record], dict[TopicPartition, int]]:
    """Up to ``max_records`` records from the given positions, partitions in the given order; and
    the next offset of every partition read from."""
    out: list[Record] = []
    reached: dict[TopicPartition, int] = {}
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
    return out, reached


def committed_offsets(conn: sqlite3.Connection, topic: str, group: str) -> dict[int, int]:
    """Committed next offset of ``group`` per partition of ``topic``."""
    return dict(
        conn.execute(
            "SELECT partition, next_offset FROM group_offsets WHERE grp = ? AND topic = ?",
            (group, topic),
        ).fetchall()
    )


def lag(conn: sqlite3.Connection, topic: str, partitions: int, group: str) -> int:
    """Records of ``topic`` past ``group``'s committed offsets (from the first record kept where none,
    or where the committed offset fell out of retention)."""
    committed = committed_offsets(conn, topic, group)
    total = 0
    for partition in range(partitions):
        end = end_offset(conn, topic, partition)
        begin = begin_offset(conn, topic, partition)  # records before it fell out of retention
        total += max(0, end - max(begin, int(committed.get(partition, begin))))
    return total
