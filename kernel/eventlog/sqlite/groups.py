"""Consumer groups on SQLite: membership by heartbeat, round-robin assignment, owned offsets.

A member gives a partition up only at its next ``poll`` (after its batch was committed or abandoned)
and a new owner claims it only once released or once the old member's heartbeat expired, so one
partition is never read by two members at once. ``commit_offsets`` only writes offsets of partitions
the member still owns: a member that lost a partition cannot move its offset.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, NamedTuple

from kernel.eventlog.sqlite.connection import now_ms, write_txn
from kernel.eventlog.sqlite.records import TopicPartition, begin_offset, end_offset


class Membership(NamedTuple):
    """What one member tells the group at each sync."""

    group: str
    member: str
    topics: tuple[str, ...]
    partition_counts: Mapping[str, int]
    session_ms: int
    start_from: Literal["earliest", "latest"]


class Assignment(NamedTuple):
    """The partitions a member owns after a sync, with a start offset for each newly owned one (None:
    already owned, keep the position) and whether it still lacks part of its share."""

    starts: dict[TopicPartition, int | None]
    unsettled: bool


def sync_member(
    conn: sqlite3.Connection,
    me: Membership,
    known: frozenset[TopicPartition],
    busy: frozenset[TopicPartition],
) -> Assignment:
    """Heartbeat, expire dead members, release partitions no longer ours (except ``busy`` ones) and
    claim free ones, in one write transaction. ``known``: the partitions the member reads already."""
    now = now_ms()
    with write_txn(conn):
        _heartbeat(conn, me, now)
        _expire_members(conn, me.group, now - me.session_ms)
        desired = _share(_members(conn, me.group), me)
        owned = _owned(conn, me)
        _release(conn, me.group, owned - desired - busy)
        _claim(conn, me, desired - owned)
        owned = _owned(conn, me)
        starts: dict[TopicPartition, int | None] = {tp: None for tp in owned & known}
        starts.update(_start_offsets(conn, me, owned - known))
        return Assignment(starts, owned != desired)


def _heartbeat(conn: sqlite3.Connection, me: Membership, now: int) -> None:
    conn.execute(
        "INSERT INTO group_members (grp, member, topics, heartbeat_ms) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (grp, member) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms",
        (me.group, me.member, "\n".join(me.topics), now),
    )


def _expire_members(conn: sqlite3.Connection, group: str, beat_before_ms: int) -> None:
    """Members without a heartbeat since ``beat_before_ms`` leave, and their partitions are free."""
    conn.execute("DELETE FROM group_members WHERE grp = ? AND heartbeat_ms < ?", (group, beat_before_ms))
    conn.execute(
        "DELETE FROM partition_owners WHERE grp = ? AND member NOT IN"
        " (SELECT member FROM group_members WHERE grp = ?)",
        (group, group),
    )


def _members(conn: sqlite3.Connection, group: str) -> list[tuple[str, str]]:
    """(member, newline-separated topics) of every live member, in member order."""
    rows = conn.execute(
        "SELECT member, topics FROM group_members WHERE grp = ? ORDER BY member", (group,)
    ).fetchall()
    return [(str(member), str(topics)) for member, topics in rows]


def _share(members: Sequence[tuple[str, str]], me: Membership) -> set[TopicPartition]:
    """This member's round-robin share of each topic's partitions among the topic's subscribers."""
    desired: set[TopicPartition] = set()
    for topic in me.topics:
        subscribers = [m for m, t in members if topic in t.split("\n")]
        index = subscribers.index(me.member)
        count = me.partition_counts[topic]
        desired.update((topic, p) for p in range(count) if p % len(subscribers) == index)
    return desired


def _owned(conn: sqlite3.Connection, me: Membership) -> set[TopicPartition]:
    rows = conn.execute(
        "SELECT topic, partition FROM partition_owners WHERE grp = ? AND member = ?", (me.group, me.member)
    )
    return {(t, p) for t, p in rows}


def _release(conn: sqlite3.Connection, group: str, partitions: Iterable[TopicPartition]) -> None:
    for topic, partition in partitions:
        conn.execute(
            "DELETE FROM partition_owners WHERE grp = ? AND topic = ? AND partition = ?",
            (group, topic, partition),
        )


def _claim(conn: sqlite3.Connection, me: Membership, partitions: Iterable[TopicPartition]) -> None:
    """Take the free ones of ``partitions``; one still owned by another member stays its own."""
    for topic, partition in partitions:
        conn.execute(
            "INSERT OR IGNORE INTO partition_owners (grp, topic, partition, member) VALUES (?, ?, ?, ?)",
            (me.group, topic, partition, me.member),
        )


def _start_offsets(
    conn: sqlite3.Connection, me: Membership, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int | None]:
    """Where to start reading newly owned partitions: the committed offset, else earliest/latest."""
    starts: dict[TopicPartition, int | None] = {}
    for topic, partition in partitions:
        row = conn.execute(
            "SELECT next_offset FROM group_offsets WHERE grp = ? AND topic = ? AND partition = ?",
            (me.group, topic, partition),
        ).fetchone()
        if row is not None:
            starts[(topic, partition)] = int(row[0])
        elif me.start_from == "latest":
            starts[(topic, partition)] = end_offset(conn, topic, partition)
        else:
            starts[(topic, partition)] = begin_offset(conn, topic, partition)
    return starts


def commit_offsets(
    conn: sqlite3.Connection, group: str, member: str, offsets: Mapping[TopicPartition, int]
) -> int:
    """Store next offsets of the partitions ``member`` still owns; the number stored."""
    now = now_ms()
    with write_txn(conn):
        cur = conn.executemany(
            "INSERT INTO group_offsets (grp, topic, partition, next_offset, updated_ms)"
            " SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM partition_owners"
            "  WHERE grp = ? AND topic = ? AND partition = ? AND member = ?)"
            " ON CONFLICT (grp, topic, partition) DO UPDATE"
            " SET next_offset = excluded.next_offset, updated_ms = excluded.updated_ms",
            [(group, t, p, o, now, group, t, p, member) for (t, p), o in offsets.items()],
        )
        return cur.rowcount


def leave(conn: sqlite3.Connection, group: str, member: str) -> None:
    """Drop ``member`` and its partitions at once (no wait for its heartbeat to expire)."""
    with write_txn(conn):
        conn.execute("DELETE FROM partition_owners WHERE grp = ? AND member = ?", (group, member))
        conn.execute("DELETE FROM group_members WHERE grp = ? AND member = ?", (group, member))
