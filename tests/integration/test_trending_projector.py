"""Embedded stack below HTTP: TrendingComputed events -> SQLite event log -> trending projector -> the
trending store. The in-process store is volatile: a new process (a new projector over an empty store)
replays the topic from the beginning in a group of its own and ends at the same newest lists; a durable
store resumes the shared group."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from emporium.adapters import TRENDING_STORE
from kernel.contracts.events import Envelope, TrendingComputed, TrendingEntry, new_event
from kernel.eventlog.processing import publish_events
from kernel.eventlog.projection import ProjectorMetrics
from kernel.eventlog.sqlite import SqliteEventLog
from read_models.trending import TrendingStore
from read_models.trending.memory import MemoryTrendingStore
from read_models.trending_projector import TRENDING_GROUP, TrendingProjection, trending_projector


def computed(
    revision: int, *keys: str, kind: str = "queries", window: str = "hour", region: str = ""
) -> Envelope:
    payload = TrendingComputed(
        window=window,
        kind=kind,
        window_end=datetime(2026, 12, 6, 9, tzinfo=UTC),
        entries=tuple(TrendingEntry(key=k, score=1.0, count=10) for k in keys),
        region=region,
    )
    return new_event(payload, key=f"trending:{kind}:{window}:{region}", revision=revision, producer="t")


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[SqliteEventLog]:
    event_log = SqliteEventLog.from_url(f"sqlite:///{tmp_path / 'events.db'}")
    await event_log.start()
    try:
        yield event_log
    finally:
        await event_log.close()


async def project(log: SqliteEventLog, store: TrendingStore) -> TrendingProjection:
    task = trending_projector(log, store, metrics=ProjectorMetrics.of(CollectorRegistry()), poll_timeout=0.05)
    task.start()
    try:
        await task.wait_caught_up(poll_s=0.005, timeout_s=30)
    finally:
        await task.stop()
    assert isinstance(task.projection, TrendingProjection)
    return task.projection


async def test_newest_lists_win_and_bad_events_are_skipped(log: SqliteEventLog) -> None:
    await publish_events(
        log,
        [
            computed(2, "milk", "rice"),
            computed(1, "old"),
            computed(3, "shop:1", kind="products", window="day", region="south"),
            computed(9, "x", window="year"),
        ],
    )
    await publish_events(log, [computed(2, "repeat")])
    store = MemoryTrendingStore()
    projection = await project(log, store)
    hour = await store.get("queries", "hour", "")
    assert hour is not None and [e.key for e in hour.entries] == ["milk", "rice"] and hour.revision == 2
    day = await store.get("products", "day", "south")
    assert day is not None and day.entries[0].key == "shop:1"
    assert projection.rejected == 1


async def test_a_volatile_store_is_refilled_by_replay_in_each_process(log: SqliteEventLog) -> None:
    await publish_events(log, [computed(1, "a"), computed(2, "b")])
    first = MemoryTrendingStore()
    await project(log, first)
    restarted = MemoryTrendingStore()  # a new process: empty memory, the log unchanged
    await project(log, restarted)
    assert await restarted.get("queries", "hour", "") == await first.get("queries", "hour", "")
    found = await restarted.get("queries", "hour", "")
    assert found is not None and found.entries[0].key == "b"


def test_a_durable_store_uses_the_shared_group(log: SqliteEventLog) -> None:
    durable = TRENDING_STORE.open("redis://127.0.0.1:1/0")  # never connected: only its volatility is read
    task = trending_projector(log, durable, metrics=ProjectorMetrics.of(CollectorRegistry()))
    assert task.group == TRENDING_GROUP and not task.processor.replay
    volatile = trending_projector(
        log, MemoryTrendingStore(), metrics=ProjectorMetrics.of(CollectorRegistry())
    )
    assert volatile.group.startswith(f"{TRENDING_GROUP}.local.") and volatile.processor.replay
