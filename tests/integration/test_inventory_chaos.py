"""Chaos during a flash sale: Redis flushed, Redis restarted, MySQL killed and restarted, the
service killed with SIGKILL. Afterwards: no oversell, every acknowledged reservation is durable,
no confirmed sale is lost and no stock is stranded (held + sold == units sold to acknowledged buyers).

Servers that a test breaks are private to it (own redis-server / mariadbd built from
infra/local/stack.py's recipes); the shared session servers are never flushed or stopped.
Buyers behave like real clients: on 503 or a dropped connection they retry with the SAME
Idempotency-Key; they stop on 201 (bought) or 409 (sold out).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pymysql
import pytest
import redis.asyncio as aioredis
from chaos_support import wait_until
from inventory_support import (
    PrivateServer,
    ServiceProcess,
    audit_mysql,
    drop_mysql_database,
    free_port,
    mysql_target,
    mysql_url_with_database,
    unique_name,
)

from inventory.cluster import ClusterEngine
from inventory.domain import EngineUnavailable, InsufficientStock, ReserveRequest, Status
from loadtest.inventory_stack import fresh_engine

UNITS = 400
BUYERS = 1600


@dataclass
class Sale:
    bought: dict[str, str] = field(default_factory=dict)  # idempotency key -> reservation id
    sold_out: int = 0
    refusals_503: int = 0
    errors: list[str] = field(default_factory=list)


async def run_sale(
    attempt: Callable[[str, int], Awaitable[tuple[str, str | None]]],
    sale: Sale,
    *,
    buyers: int = BUYERS,
    spread_s: float = 4.0,
    deadline_s: float = 90.0,
) -> None:
    """Buyers arrive over ``spread_s`` seconds and retry 503s until bought or sold out."""
    deadline = time.monotonic() + deadline_s

    async def buyer(i: int) -> None:
        await asyncio.sleep(spread_s * i / buyers)
        key = f"buyer-{i}"
        while True:
            outcome, rid = await attempt(key, i)
            if outcome == "bought":
                assert rid is not None
                sale.bought[key] = rid
                return
            if outcome == "sold_out":
                sale.sold_out += 1
                return
            sale.refusals_503 += 1
            if time.monotonic() > deadline:
                sale.errors.append(f"{key}: still refused at the deadline")
                return
            await asyncio.sleep(0.1)

    await asyncio.gather(*(buyer(i) for i in range(buyers)))


def engine_attempt(
    engine: ClusterEngine, sku: str
) -> Callable[[str, int], Awaitable[tuple[str, str | None]]]:
    async def attempt(key: str, i: int) -> tuple[str, str | None]:
        try:
            res = await engine.reserve(
                ReserveRequest(sku=sku, quantity=1, customer_id=f"c{i}", idempotency_key=key)
            )
            return "bought", res.reservation_id
        except InsufficientStock:
            return "sold_out", None
        except EngineUnavailable:
            return "retry", None

    return attempt


def reservations_in_mysql(url: str, sku: str) -> dict[str, tuple[str, str]]:
    """id -> (status, idempotency key) for real (non-tombstone) rows."""
    conn = pymysql.connect(**mysql_target(url).pymysql_kwargs())  # type: ignore[arg-type]
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, status, idempotency_key FROM inv_reservations WHERE sku = %s", (sku,))
            return {rid: (status, key) for rid, status, key in cur.fetchall()}
    finally:
        conn.close()


async def assert_exact(
    engine: ClusterEngine, db_url: str, sku: str, sale: Sale, *, units: int = UNITS
) -> None:
    """Sold out exactly, every unit belongs to an acknowledged buyer, Redis agrees with MySQL."""
    assert not sale.errors, sale.errors[:5]
    assert len(sale.bought) == units, (len(sale.bought), sale.sold_out)
    assert len(set(sale.bought.values())) == units
    audit = audit_mysql(db_url, sku)
    assert audit.consistent, audit
    assert audit.on_hand == units and audit.held + audit.sold == units, audit  # no oversell, nothing stranded
    rows = reservations_in_mysql(db_url, sku)
    live = {rid for rid, (status, _) in rows.items() if status in ("held", "confirmed")}
    assert live == set(sale.bought.values())  # every acknowledged reservation is durable, nothing else holds
    await engine.reconcile()
    fast = await engine.fast_path_stock(sku)
    assert fast is not None and (fast.on_hand, fast.held, fast.sold) == (
        audit.on_hand,
        audit.held,
        audit.sold,
    )


async def test_flushall_mid_sale(own_redis: PrivateServer, mysql_url: str) -> None:
    async with fresh_engine(own_redis.url, mysql_url, "inv_flush", monitor_interval=0.2) as (
        engine,
        db_url,
    ):
        await engine.set_on_hand("FLASH", UNITS)
        sale = Sale()
        task = asyncio.create_task(run_sale(engine_attempt(engine, "FLASH"), sale))
        await wait_until(lambda: len(sale.bought) >= UNITS // 4, 30, "a quarter sold")
        client = aioredis.Redis.from_url(own_redis.url)
        await client.flushall()
        await client.aclose()
        await task
        assert engine.stats.reconciles >= 2  # at start, and after the flush was detected
        await assert_exact(engine, db_url, "FLASH", sale)


async def test_redis_restart_mid_sale(own_redis: PrivateServer, mysql_url: str) -> None:
    async with fresh_engine(own_redis.url, mysql_url, "inv_rrestart", monitor_interval=0.2) as (
        engine,
        db_url,
    ):
        await engine.set_on_hand("FLASH", UNITS)
        sale = Sale()
        task = asyncio.create_task(run_sale(engine_attempt(engine, "FLASH"), sale))
        await wait_until(lambda: len(sale.bought) >= UNITS // 4, 30, "a quarter sold")
        await asyncio.to_thread(own_redis.stop, signal.SIGKILL)
        await asyncio.sleep(0.5)  # buyers see 503 while Redis is down
        await asyncio.to_thread(own_redis.start)
        await task
        assert sale.refusals_503 > 0
        assert engine.stats.reconciles >= 2
        await assert_exact(engine, db_url, "FLASH", sale)


async def test_mysql_killed_and_restarted_mid_sale(own_mariadb: PrivateServer, redis_url: str) -> None:
    async with fresh_engine(
        redis_url, own_mariadb.url, "inv_mrestart", monitor_interval=0.2, db_timeout=5
    ) as (engine, db_url):
        await engine.set_on_hand("FLASH", UNITS)
        confirmed: list[str] = []
        sale = Sale()
        task = asyncio.create_task(run_sale(engine_attempt(engine, "FLASH"), sale, spread_s=6))
        await wait_until(lambda: len(sale.bought) >= UNITS // 4, 30, "a quarter sold")
        for rid in list(sale.bought.values())[:20]:  # some sales are confirmed before the crash
            confirmed.append((await engine.confirm(rid)).reservation_id)
        await asyncio.to_thread(own_mariadb.stop, signal.SIGKILL)
        with pytest.raises(EngineUnavailable):  # refused with 503 while MySQL is down, nothing taken
            for _ in range(50):
                await engine.reserve(
                    ReserveRequest(sku="FLASH", quantity=1, customer_id="x", idempotency_key="down")
                )
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(own_mariadb.start, 120)
        await task
        assert sale.refusals_503 > 0
        for rid in confirmed:  # no confirmed sale lost
            assert (await engine.get_reservation(rid)).status is Status.CONFIRMED
        await assert_exact(engine, db_url, "FLASH", sale)


async def test_frozen_mysql_answers_within_the_deadline(own_mariadb: PrivateServer, redis_url: str) -> None:
    """MySQL hangs (SIGSTOP: connections open, no answers) for longer than a caller may wait: the caller
    gets a retryable refusal at the deadline, and its retry with the same key, once MySQL is back,
    gets one reservation: the stock is taken once."""
    assert own_mariadb.proc is not None
    pid = own_mariadb.proc.pid
    async with fresh_engine(
        redis_url, own_mariadb.url, "inv_frozen", monitor_interval=0.2, db_timeout=60, reserve_deadline=1.0
    ) as (engine, db_url):
        try:
            await engine.set_on_hand("FROZEN", 10)
            request = ReserveRequest(sku="FROZEN", quantity=2, customer_id="ann", idempotency_key="frozen-1")
            os.kill(pid, signal.SIGSTOP)
            started = time.monotonic()
            with pytest.raises(EngineUnavailable):
                await engine.reserve(request)
            assert time.monotonic() - started < 3.0
            os.kill(pid, signal.SIGCONT)
            deadline = time.monotonic() + 60
            while True:
                try:
                    res = await engine.reserve(request)
                    break
                except EngineUnavailable:
                    assert time.monotonic() < deadline, "no answer after MySQL came back"
                    await asyncio.sleep(0.2)
            assert (await engine.reserve(request)).reservation_id == res.reservation_id
            await wait_until(lambda: audit_mysql(db_url, "FROZEN").held == 2, 30, "the hold recorded")
            audit = audit_mysql(db_url, "FROZEN")
            assert audit.consistent and audit.held == 2 and audit.sold == 0, audit
            live = reservations_in_mysql(db_url, "FROZEN")
            assert set(live) == {res.reservation_id}, live
        finally:
            os.kill(pid, signal.SIGCONT)


async def test_service_killed_mid_sale(tmp_path: Path, redis_url: str, mysql_url: str) -> None:
    db_url = mysql_url_with_database(mysql_url, unique_name("inv_kill"))
    token = unique_name("tok")
    service = ServiceProcess(
        env={
            "EMPORIUM_DATA_DIR": str(tmp_path / "data"),
            "EMPORIUM_EVENT_LOG_URL": f"sqlite:///{tmp_path}/events.db",
            "EMPORIUM_DATABASE_URL": db_url,
            "EMPORIUM_CACHE_URL": redis_url,
            "EMPORIUM_ADMIN_TOKEN": token,
            "EMPORIUM_LOG_LEVEL": "warning",
            "EMPORIUM_RATE_LIMIT_STOREFRONT": "1000000/second",  # the whole sale is one storefront's
        },
        port=free_port(),
        log=tmp_path / "service.log",
    )
    await asyncio.to_thread(service.start)
    try:
        async with httpx.AsyncClient(base_url=service.base) as c:
            r = await c.put(
                "/v1/stock/shop:FLASH", json={"on_hand": UNITS}, headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == 200, r.text
            shop = await c.post(
                "/v1/storefronts",
                json={"storefront_id": "shop"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert shop.status_code == 201, shop.text
        confirmed: list[str] = []
        sale = Sale()
        async with aiohttp.ClientSession(
            service.base,
            connector=aiohttp.TCPConnector(limit=100),
            timeout=aiohttp.ClientTimeout(total=10),
            headers={"X-Api-Key": shop.json()["api_key"]},
        ) as session:

            async def attempt(key: str, i: int) -> tuple[str, str | None]:
                try:
                    async with session.post(
                        "/v1/reservations",
                        json={"sku": "shop:FLASH", "quantity": 1, "customer_id": f"c{i}"},
                        headers={"Idempotency-Key": key},
                    ) as resp:
                        body: Any = await resp.json(content_type=None)
                        if resp.status == 201:
                            if i % 10 == 0:  # a tenth of the buyers pay at once
                                async with session.post(
                                    f"/v1/reservations/{body['reservation_id']}/confirm"
                                ) as cr:
                                    if cr.status == 200:
                                        confirmed.append(body["reservation_id"])
                            return "bought", body["reservation_id"]
                        if resp.status == 409:
                            return "sold_out", None
                        assert resp.status == 503, (resp.status, body)
                        return "retry", None
                except (aiohttp.ClientError, TimeoutError):
                    return "retry", None  # the server died under us: retry with the same key

            task = asyncio.create_task(run_sale(attempt, sale, spread_s=8, deadline_s=120))
            await wait_until(lambda: len(sale.bought) >= UNITS // 3, 60, "a third sold")
            service.kill(signal.SIGKILL)
            await asyncio.sleep(0.5)
            await asyncio.to_thread(service.start)  # start() reconciles Redis from MySQL
            await task
        assert confirmed, "no sale was confirmed"
        engine = ClusterEngine(redis_url, mysql_target(db_url), sweep_interval=None)
        await engine.start()
        try:
            for rid in confirmed:
                assert (await engine.get_reservation(rid)).status is Status.CONFIRMED
            await assert_exact(engine, db_url, "shop:FLASH", sale)
        finally:
            await engine.close()
    finally:
        service.kill(signal.SIGTERM)
        drop_mysql_database(db_url)
