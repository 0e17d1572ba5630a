"""How an idle consumer learns of new records cheaply: in-process wake-ups, and a check on the loop thread.

Idle consumers poll every few milliseconds for records published by other processes; asking their
worker threads each time cost the serving thread a GIL hand-off per poll. ``IdleWatch`` answers most of
those polls on the event-loop thread instead.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Final

UNKNOWN: Final = object()  # an answer that equals nothing


class TopicWakers:
    """Wakes in-process consumers of a topic as soon as a publish to it commits; other processes are
    seen by polling. Per topic: a busy topic (storefront activity) must not wake every consumer."""

    def __init__(self) -> None:
        self._wakers: dict[str, set[asyncio.Event]] = {}

    def subscribe(self, topics: Sequence[str], waker: asyncio.Event) -> None:
        for topic in topics:
            self._wakers.setdefault(topic, set()).add(waker)

    def unsubscribe(self, topics: Sequence[str], waker: asyncio.Event) -> None:
        for topic in topics:
            self._wakers.get(topic, set()).discard(waker)

    def notify(self, topic: str) -> None:
        for waker in self._wakers.get(topic, ()):
            waker.set()


class IdleWatch:
    """The loop thread's own connection, opened on first use; see :meth:`quiet_since`."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None

    def quiet_since(self, since: object, topics: Sequence[str]) -> object:
        """The log's highest record id (None: empty) if no record of ``topics`` was appended after
        record id ``since``, else ``UNKNOWN``; read on the event-loop thread.

        One indexed MAX(id) answers when nothing was appended at all, and a scan of only the records
        appended since (a busy topic's last few milliseconds) answers when other topics grew. It never
        waits: in WAL mode a reader does not block on writers, and a busy file answers ``UNKNOWN``
        (the caller then asks its thread as before). Exact because writers are serialized: a record
        committed later always has a higher id.
        """
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(self._path, isolation_level=None, timeout=0)
            top = self._conn.execute("SELECT MAX(id) FROM records").fetchone()[0]
            if top == since:
                return top
            if not isinstance(since, int):  # the log was empty (None) or could not tell
                return UNKNOWN
            marks = ", ".join("?" * len(topics))
            newer = self._conn.execute(
                # ``+topic``: walk only the ids after ``since``; on the topic index SQLite would scan
                # every record of these topics (all of the catalog's, for an idle projector)
                f"SELECT 1 FROM records WHERE id > ? AND +topic IN ({marks}) LIMIT 1",
                (since, *topics),
            ).fetchone()
            return UNKNOWN if newer is not None else top
        except sqlite3.Error:
            return UNKNOWN

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
