"""Chaos during a checkout rush on the cluster engine: Redis flushed, Redis killed and restarted, MariaDB
killed and restarted, while shoppers hold 3-line groups of overlapping scarce SKUs. Afterwards: no
group is partly held, every acknowledged group is durable whole, nothing else holds stock, no oversell,
and Redis agrees with MySQL.

Shoppers behave like real clients: on a 503 they retry with the SAME Idempotency-Key; they stop when
their group is held or a line is short. The servers broken here are private to each test.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from dataclasses import dataclass, field

import pymysql
import redis.asyncio as aioredis
from chaos_support import wait_until
from inventory_support import (
    PrivateServer,
    audit_mysql,
    drop_mysql_database,
    mysql_target,
    mysql_url_with_database,
    unique_name,
)

from inventory.cluster import ClusterEngine
from inventory.domain import EngineUnavailable, InsufficientStock
from inventory.groups import GroupReserveRequest

SKUS = [f"chaos:G-{n}" for n in range(5)]
UNITS = 120  # per SKU
SHOPPERS = 500


@dataclass
class Rush:
    held: dict[str, GroupReserveRequest] = field(default_factory=dict)  # group key -> the group
    short: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)


def group(i: int) -> GroupReserveRequest:
    lines = tuple((SKUS[(i + k * 2) % len(SKUS)], 1 + (i + k) % 2) for k in range(3))
    return GroupReserveRequest(lines=lines, customer_id=f"c{i}", idempotency_key=f"rush-{i}")


async def rush(
    engine: ClusterEngine, state: Rush, *, spread_s: float = 4.0, deadline_s: float = 120.0
) -> None:
    deadline = time.monotonic() + deadline_s

    async def shopper(i: int) -> None:
        await asyncio.sleep(spread_s * i / SHOPPERS)
        request = group(i)
        while True:
            try:
                held = await engine.reserve_many(request)
            except InsufficientStock:
                state.short += 1
                return
            except EngineUnavailable:
                state.retries += 1
                if time.monotonic() > deadline:
                    state.errors.append(f"{request.idempotency_key}: still refused at the deadline")
                    return
                await asyncio.sleep(0.1)
                continue
            if [(r.sku, r.quantity) for r in held] != list(request.lines):
                state.errors.append(f"{request.idempotency_key}: answered {held}")
            state.held[request.idempotency_key] = request
            return

    await asyncio.gather(*(shopper(i) for i in range(SHOPPERS)))


def groups_in_mysql(url: str) -> dict[str, list[tuple[str, int, str]]]:
    """Group key -> its real reservation rows (sku, quantity, status)."""
    conn = pymysql.connect(**mysql_target(url).pymysql_kwargs())  # type: ignore[arg-type]
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT idempotency_key, sku, quantity, status FROM inv_reservations"
                " WHERE idempotency_key LIKE 'rush-%'"
            )
            found: dict[str, list[tuple[str, int, str]]] = {}
            for key, sku, quantity, status in cur.fetchall():
                found.setdefault(key.split("#")[0], []).append((sku, int(quantity), status))
            return found
    finally:
        conn.close()


async def assert_whole(engine: ClusterEngine, db_url: str, state: Rush) -> None:
    assert not state.errors, state.errors[:5]
    rows = groups_in_mysql(db_url)
    live = {key: lines for key, lines in rows.items() if any(s in ("held", "confirmed") for _, _, s in lines)}
    for key, lines in rows.items():  # no partial group, ever
        request = group(int(key.split("-")[1]))
        live_lines = [(sku, q) for sku, q, s in lines if s in ("held", "confirmed")]
        assert live_lines in ([], sorted(request.lines)) or sorted(live_lines) == sorted(request.lines), (
            key,
            lines,
        )
    assert set(live) == set(state.held), set(live) ^ set(state.held)  # acknowledged == durable, whole
    taken: Counter[str] = Counter()
    for request in state.held.values():
        taken.update(dict(request.lines))
    await engine.reconcile()
    await engine.reconciler.wait_running(30)  # a rebuild the monitor scheduled meanwhile runs after ours
    await wait_until(lambda: engine.fast_path.epoch is not None, 30, "the fast path ready")
    for sku in SKUS:
        audit = audit_mysql(db_url, sku)
        assert audit.consistent, (sku, audit)
        assert audit.held + audit.sold == taken[sku] <= UNITS, (sku, audit, taken[sku])
        fast = await engine.fast_path_stock(sku)
        for _ in range(300):  # a rebuild the monitor started after ours may still be filling Redis
            if fast is not None:
                break
            await asyncio.sleep(0.1)
            fast = await engine.fast_path_stock(sku)
        assert fast is not None and (fast.held, fast.sold) == (audit.held, audit.sold), (sku, fast, audit)


async def _stocked(engine: ClusterEngine) -> None:
    await engine.start()
    for sku in SKUS:
        await engine.set_on_hand(sku, UNITS)


async def test_groups_survive_a_redis_flush(own_redis: PrivateServer, mysql_url: str) -> None:
    db_url = mysql_url_with_database(mysql_url, unique_name("grp_flush"))
    engine = ClusterEngine(own_redis.url, mysql_target(db_url), monitor_interval=0.2)
    await _stocked(engine)
    try:
        state = Rush()
        task = asyncio.create_task(rush(engine, state))
        await wait_until(lambda: len(state.held) >= 40, 60, "groups held")
        client = aioredis.Redis.from_url(own_redis.url)
        await client.flushall()
        await client.aclose()
        await task
        await assert_whole(engine, db_url, state)
    finally:
        await engine.close()
        drop_mysql_database(db_url)


async def test_groups_survive_a_redis_restart(own_redis: PrivateServer, mysql_url: str) -> None:
    db_url = mysql_url_with_database(mysql_url, unique_name("grp_rrestart"))
    engine = ClusterEngine(own_redis.url, mysql_target(db_url), monitor_interval=0.2)
    await _stocked(engine)
    try:
        state = Rush()
        task = asyncio.create_task(rush(engine, state))
        await wait_until(lambda: len(state.held) >= 40, 60, "groups held")
        await asyncio.to_thread(own_redis.stop, signal.SIGKILL)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(own_redis.start)
        await task
        assert state.retries > 0
        await assert_whole(engine, db_url, state)
    finally:
        await engine.close()
        drop_mysql_database(db_url)


async def test_groups_survive_mariadb_killed(own_mariadb: PrivateServer, own_redis: PrivateServer) -> None:
    # a Redis of its own too: on the session's, a process an earlier test left behind may rebuild the
    # fast path under this engine
    db_url = mysql_url_with_database(own_mariadb.url, unique_name("grp_mrestart"))
    engine = ClusterEngine(own_redis.url, mysql_target(db_url), monitor_interval=0.2, db_timeout=5)
    await _stocked(engine)
    try:
        state = Rush()
        task = asyncio.create_task(rush(engine, state, spread_s=6))
        await wait_until(lambda: len(state.held) >= 40, 60, "groups held")
        await asyncio.to_thread(own_mariadb.stop, signal.SIGKILL)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(own_mariadb.start, 120)
        await task
        assert state.retries > 0
        await assert_whole(engine, db_url, state)
    finally:
        await engine.close()
        drop_mysql_database(db_url)
