"""Deleting from the SQLite event log what its retention policy drops (``kernel.eventlog.retention``).

Runs on the log's writer connection when the log starts and then at most once a prune interval, after
a publish to a topic that has a retention. Deletes go in small transactions, so publishers never wait
long for the write lock. A partition's offsets grow with time, so the first offset young enough to keep
is found by a binary search on the offset index (there is no index on timestamps), and a partition's
size is estimated from its record count and the mean size of its newest records. The newest record
of a partition is always kept (it holds the partition's next offset). Consumers whose committed
offset fell out of the log go on from the first record kept, as with Kafka.
"""

from __future__ import annotations

import sqlite3

from kernel.eventlog.retention import Retention, RetentionPolicy

_DELETE_BATCH = 5000
_SIZE_SAMPLE = 1000


def prune(conn: sqlite3.Connection, policy: RetentionPolicy, now_ms: int) -> int:
    """Delete every record ``policy`` drops at ``now_ms``; returns how many were deleted."""
    deleted = 0
    for topic, partitions in conn.execute("SELECT name, partitions FROM topics").fetchall():
        retention = policy.of(topic)
        if retention.forever:
            continue
        for partition in range(int(partitions)):
            begin, end = _bounds(conn, topic, partition)
            keep_from = _first_kept(conn, topic, partition, begin, end, retention, now_ms)
            deleted += _delete_before(conn, topic, partition, begin, keep_from)
    return deleted


def _bounds(conn: sqlite3.Connection, topic: str, partition: int) -> tuple[int, int]:
    """First offset held and the next offset to be written (equal when the partition is empty)."""
    where = "FROM records WHERE topic = ? AND partition = ?"
    first = conn.execute(f'SELECT MIN("offset") {where}', (topic, partition)).fetchone()[0]
    last = conn.execute(f'SELECT MAX("offset") {where}', (topic, partition)).fetchone()[0]
    return (0, 0) if first is None else (int(first), int(last) + 1)


def _first_kept(
    conn: sqlite3.Connection,
    topic: str,
    partition: int,
    begin: int,
    end: int,
    retention: Retention,
    now_ms: int,
) -> int:
    keep_from = begin
    if retention.max_age_s is not None and end > begin:
        cutoff_ms = now_ms - int(retention.max_age_s * 1000)
        low, high = begin, end
        while low < high:  # the first offset stamped at or after the cutoff
            middle = (low + high) // 2
            stamped = conn.execute(
                'SELECT timestamp_ms FROM records WHERE topic = ? AND partition = ? AND "offset" >= ?'
                ' ORDER BY "offset" LIMIT 1',
                (topic, partition, middle),
            ).fetchone()
            if stamped is None or stamped[0] >= cutoff_ms:
                high = middle
            else:
                low = middle + 1
        keep_from = max(keep_from, low)
    if retention.max_bytes is not None and end > begin:
        mean = conn.execute(
            "SELECT AVG(length(value) + IFNULL(length(key), 0)) FROM records"
            ' WHERE topic = ? AND partition = ? AND "offset" >= ?',
            (topic, partition, max(begin, end - _SIZE_SAMPLE)),
        ).fetchone()[0]
        if mean:
            fitting = int(retention.max_bytes // mean)
            keep_from = max(keep_from, end - fitting)
    # The newest record always stays: the next offset of a partition is one past its last record,
    # and offsets must never start over (consumers would skip the new records).
    return min(keep_from, end - 1)


def _delete_before(conn: sqlite3.Connection, topic: str, partition: int, begin: int, keep_from: int) -> int:
    deleted = 0
    while begin < keep_from:
        upto = min(keep_from, begin + _DELETE_BATCH)
        conn.execute("BEGIN IMMEDIATE")
        try:
            deleted += conn.execute(
                'DELETE FROM records WHERE topic = ? AND partition = ? AND "offset" < ?',
                (topic, partition, upto),
            ).rowcount
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        begin = upto
    return deleted
