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
from inventory.cluster.batcher import STRANDED_AFTER_S
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
    clock = FakeClock()
    second = ClusterEngine(redis_url, mysql_target(db_url), clock=clock, sweep_interval=None)
    await second.start()  # the ready epoch is consistent: adopted, no rebuild
    try:
        assert (second.fast_path.epoch, second.stats.reconciles) == (first.fast_path.epoch, 0)
        fast = await second.fast_path_stock("R")
        assert fast is not None and (fast.on_hand, fast.held) == (5, 4)  # stricter, never looser
        clock.advance(30 + 3)  # the sweeper settles holds MySQL never got, past expiry + grace
        await second.expire_due()
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


def engine_of(redis_url: str, db_url: str) -> ClusterEngine:
    return ClusterEngine(redis_url, mysql_target(db_url), sweep_interval=None, monitor_interval=3600)


async def test_a_start_with_redis_ready_adopts_its_epoch_and_disturbs_no_one(
    redis_url: str, db_url: str
) -> None:
    """A worker start (a deploy, a restart after kill -9) does not rebuild Redis: the others keep
    deciding, see no loss, and nothing 503s."""
    first = engine_of(redis_url, db_url)
    await first.start()
    second = engine_of(redis_url, db_url)
    try:
        await first.set_on_hand("R", 5)
        await first.reserve(req("before"))
        epoch = first.fast_path.epoch
        await second.start()
        assert (second.fast_path.epoch, second.stats.reconciles) == (epoch, 0)
        await first.monitor.check_once()  # what the running worker sees next
        await first.ping()
        assert (first.fast_path.epoch, first.fast_path.losses, first.stats.reconciles) == (epoch, 0, 1)
        await first.reserve(req("after"))  # decided at once
        with pytest.raises(InsufficientStock):
            await second.reserve(req("too-many"))  # the adopted counters hold both holds
        audit = audit_mysql(db_url, "R")
        assert audit.consistent and audit.held == 4
    finally:
        await second.close()
        await first.close()


async def test_engines_starting_together_after_a_loss_rebuild_once(redis_url: str, db_url: str) -> None:
    first = engine_of(redis_url, db_url)
    await first.start()
    await first.set_on_hand("R", 5)
    keys = first.fast_path.keys
    await first.fast_path.redis.delete(keys.ready)  # Redis lost its counters while nothing ran
    await first.close()
    engines = [engine_of(redis_url, db_url) for _ in range(3)]
    await asyncio.gather(*(engine.start() for engine in engines))
    try:
        assert sum(engine.stats.reconciles for engine in engines) == 1
        assert len({engine.fast_path.epoch for engine in engines}) == 1
        fast = await engines[2].fast_path_stock("R")
        assert fast is not None and fast.on_hand == 5
    finally:
        for engine in engines:
            await engine.close()


async def test_a_start_rebuilds_when_the_ready_epoch_is_not_mysqls_or_not_this_servers(
    redis_url: str, db_url: str
) -> None:
    """A reconcile that bumped MySQL's epoch and never finished, or counters that came back from a
    snapshot (another Redis run), are not adopted."""
    first = engine_of(redis_url, db_url)
    await first.start()
    await first.close()
    conn = pymysql.connect(**mysql_target(db_url).pymysql_kwargs())
    with conn.cursor() as cur:
        cur.execute("UPDATE inv_meta SET epoch = epoch + 1 WHERE id = 1")
    conn.commit()
    conn.close()
    second = engine_of(redis_url, db_url)
    await second.start()
    try:
        assert second.stats.reconciles == 1 and second.fast_path.epoch != first.fast_path.epoch
        epoch = second.fast_path.epoch
        assert epoch is not None
        await second.fast_path.redis.set(second.fast_path.keys.built(epoch), "another-redis-run")
    finally:
        await second.close()
    third = engine_of(redis_url, db_url)
    await third.start()
    try:
        assert third.stats.reconciles == 1 and third.fast_path.epoch != epoch
    finally:
        await third.close()


async def test_a_loss_seen_by_every_engine_is_rebuilt_once(redis_url: str, db_url: str) -> None:
    """Redis flushed under two running engines: both refuse and count the loss, one rebuilds, the
    other adopts that epoch instead of deleting the marker again."""
    engines = [engine_of(redis_url, db_url) for _ in range(2)]
    for engine in engines:
        await engine.start()
    try:
        await engines[0].set_on_hand("R", 5)
        before = sum(engine.stats.reconciles for engine in engines)
        redis = engines[0].fast_path.redis
        stale = [key async for key in redis.scan_iter(match=engines[0].fast_path.keys.pattern)]
        await redis.delete(*stale)  # FLUSH of this deployment's keys
        await asyncio.gather(*(engine.monitor.check_once() for engine in engines))
        assert all(engine.fast_path.losses == 1 for engine in engines)

        async def both_ready() -> bool:
            return all(engine.fast_path.epoch is not None for engine in engines)

        await until(both_ready)
        assert sum(engine.stats.reconciles for engine in engines) == before + 1
        assert engines[0].fast_path.epoch == engines[1].fast_path.epoch
        assert (await engines[1].reserve(req("after"))).status.value == "held"
    finally:
        for engine in engines:
            await engine.close()


async def test_a_retry_of_a_hold_whose_process_died_is_decided_afresh(redis_url: str, db_url: str) -> None:
    """kill -9 between Redis and MySQL leaves the key decided in Redis only. Starts no longer rebuild
    Redis (which used to clear it), so the client's retry settles it once it is ``STRANDED_AFTER_S``
    old (a tombstone, as the sweeper does past expiry) and the next retry is decided afresh."""
    first = engine_of(redis_url, db_url)
    await first.start()
    await first.set_on_hand("R", 5)
    gate_writes(first)
    pending = asyncio.create_task(first.reserve(req("orphan")))
    await until_held(first, 2)
    for task in [*first._tasks, pending]:  # "kill -9"
        task.cancel()
    for task in [*first._tasks, pending]:
        with contextlib.suppress(BaseException):
            await task
    clock = FakeClock()
    second = ClusterEngine(
        redis_url, mysql_target(db_url), clock=clock, sweep_interval=None, monitor_interval=3600
    )
    await second.start()
    try:
        with pytest.raises(EngineUnavailable, match="not settled"):
            await second.reserve(req("orphan"))  # could still be a live process's commit
        clock.advance(STRANDED_AFTER_S + 1)
        with pytest.raises(EngineUnavailable, match="not settled"):
            await second.reserve(req("orphan"))  # settled now: tombstone, hold undone in Redis
        again = await second.reserve(req("orphan"))
        assert again.status.value == "held"
        fast = await second.fast_path_stock("R")
        assert fast is not None and fast.held == 2
        audit = audit_mysql(db_url, "R")
        assert audit.consistent and audit.held == 2
    finally:
        await second.close()
        await abandon(first)
