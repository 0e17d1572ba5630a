"""Deterministic recovery paths of the cluster engine (real Redis + MariaDB): holds decided in
Redis whose MySQL write never happened must not strand stock, and a late write must not resurrect
a hold that was given up (tombstones)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pymysql
import pytest
from inventory_support import (
    FakeClock,
    audit_mysql,
    drop_mysql_database,
    mysql_target,
    mysql_url_with_database,
    unique_name,
)

from inventory.cluster import ClusterEngine
from inventory.domain import EngineUnavailable, InsufficientStock, ReserveRequest


@pytest.fixture
async def db_url(mysql_url: str) -> AsyncIterator[str]:
    url = mysql_url_with_database(mysql_url, unique_name("inv_recovery"))
    yield url
    drop_mysql_database(url)


def gate_writes(engine: ClusterEngine) -> asyncio.Event:
    """Hold every group commit until the returned event is set (a stalled or dying writer)."""
    gate = asyncio.Event()
    original = engine.group_commit.commit_holds

    async def gated(*args: Any) -> None:
        await gate.wait()
        await original(*args)

    engine.group_commit.commit_holds = gated  # type: ignore[method-assign, assignment]
    return gate


async def until(predicate: Any, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def until_held(engine: ClusterEngine, held: int) -> None:
    """Wait until Redis has decided holds of ``held`` units of R (whether or not MySQL has them)."""

    async def decided() -> bool:
        fast = await engine.fast_path_stock("R")
        return fast is not None and fast.held == held

    await until(decided)


def req(key: str, qty: int = 2) -> ReserveRequest:
    return ReserveRequest(sku="R", quantity=qty, customer_id="c", idempotency_key=key, hold_seconds=30)


async def hold_not_yet_written(engine: ClusterEngine, key: str) -> tuple[asyncio.Event, asyncio.Task[Any]]:
    """A 2-unit hold of R that Redis has decided and whose group commit waits for the returned gate."""
    await engine.set_on_hand("R", 5)
    gate = gate_writes(engine)
    pending = asyncio.create_task(engine.reserve(req(key)))
    await until_held(engine, 2)
    return gate, pending


async def test_sweeper_tombstones_undurable_hold_and_refuses_late_write(redis_url: str, db_url: str) -> None:
    clock = FakeClock()
    engine = ClusterEngine(redis_url, mysql_target(db_url), clock=clock, sweep_interval=None, lost_grace=1.0)
    await engine.start()
    try:
        gate, pending = await hold_not_yet_written(engine, "late")
        clock.advance(30 + 2)  # past expiry + grace, still not in MySQL
        await engine.expire_due()
        fast = await engine.fast_path_stock("R")
        assert fast is not None and fast.held == 0  # the stranded hold is gone
        gate.set()  # the stalled writer finally commits: the tombstone wins
        with pytest.raises(EngineUnavailable):
            await pending
        audit = audit_mysql(db_url, "R")
        assert audit.consistent and audit.held == 0
        again = await engine.reserve(req("late"))  # the client's retry is decided afresh
        assert again.status.value == "held"
        assert audit_mysql(db_url, "R").held == 2
    finally:
        await engine.close()


async def test_crashed_process_leaves_no_stranded_stock_after_reconcile(redis_url: str, db_url: str) -> None:
    first = ClusterEngine(redis_url, mysql_target(db_url), sweep_interval=None)
    await first.start()
    await first.set_on_hand("R", 5)
    gate_writes(first)
    pending = [asyncio.create_task(first.reserve(req(f"crash-{i}", qty=1))) for i in range(4)]

    await until_held(first, 4)
    # "kill -9": the process vanishes with decisions in Redis that never reached MySQL.
    for task in [*first._tasks, *pending]:
        task.cancel()
    for task in [*first._tasks, *pending]:
        with contextlib.suppress(BaseException):
            await task
    second = ClusterEngine(redis_url, mysql_target(db_url), sweep_interval=None)
    await second.start()  # reconcile on start
    try:
        fast = await second.fast_path_stock("R")
        assert fast is not None and (fast.on_hand, fast.held) == (5, 0)
        sold = [await second.reserve(req(f"after-{i}", qty=1)) for i in range(5)]
        assert len(sold) == 5
        with pytest.raises(InsufficientStock):
            await second.reserve(req("one-too-many", qty=1))
        audit = audit_mysql(db_url, "R")
        assert audit.consistent and audit.held == 5
    finally:
        await second.close()
        await abandon(first)


async def abandon(engine: ClusterEngine) -> None:
    """Release what a crashed engine object still holds in this test process (no state changes)."""
    for task in [*engine.background.active]:
        task.cancel()
    for conn in engine.group_commit.connections:
        if conn is not None:
            conn.close()
    if engine.db.pool is not None:
        engine.db.pool.terminate()
        await engine.db.pool.wait_closed()
    await engine.fast_path.redis.aclose()


async def test_batch_decided_before_another_reconcile_is_fenced_and_retryable(
    redis_url: str, db_url: str
) -> None:
    """The group commit's first round trip reads the MySQL epoch with the rows: a batch decided under
    an epoch that another process's reconcile replaced writes nothing and answers a retryable 503."""
    engine = ClusterEngine(redis_url, mysql_target(db_url), sweep_interval=None, monitor_interval=3600)
    await engine.start()
    try:
        gate, pending = await hold_not_yet_written(engine, "fenced")
        conn = pymysql.connect(**mysql_target(db_url).pymysql_kwargs())
        with conn.cursor() as cur:  # what another process's reconcile does first
            cur.execute("UPDATE inv_meta SET epoch = epoch + 1 WHERE id = 1")
        conn.commit()
        conn.close()
        gate.set()
        with pytest.raises(EngineUnavailable, match="rebuilt"):
            await pending
        audit = audit_mysql(db_url, "R")
        assert audit.consistent and audit.held == 0  # nothing of the fenced batch reached MySQL
    finally:
        await engine.close()
