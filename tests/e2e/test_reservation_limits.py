"""A reservation's rate limits on both engines: the storefront's limit and its customer's hold units.

The embedded engine is guarded by the limiter before it decides; the cluster engine counts the same
windows (the limiter's own Redis keys) inside its reserve script, in the round trip that decides the
hold, so the limiter makes no Redis call of its own for a reservation. The answers are the same: 429 with
Retry-After and the RateLimit headers, every ask counted (granted, refused or malformed), nothing held.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from inventory_support import drop_mysql_database, mysql_url_with_database, unique_name
from litestar import Litestar

from emporium.app import create_app
from emporium.container import Container
from kernel.settings import Settings, load_settings

TOKEN = "reservation-limits-admin"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
ENGINES = ["sqlite", pytest.param("cluster", marks=pytest.mark.cluster)]


class Shop(NamedTuple):
    client: httpx.AsyncClient  # sends the storefront's key
    anonymous: httpx.AsyncClient
    settings: Settings
    container: Container

    async def reserve(self, sku: str, customer: str, quantity: int, **extra: Any) -> httpx.Response:
        body = {"sku": sku, "quantity": quantity, "customer_id": customer, **extra}
        return await self.client.post("/v1/reservations", json=body)


ServeShop = Callable[..., AbstractAsyncContextManager[Shop]]


@pytest.fixture(params=ENGINES)
def serve_shop(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    served_app: Callable[[Litestar], AbstractAsyncContextManager[str]],
) -> ServeShop:
    """``serve_shop(**settings)``: the app on the engine, stock for shop:HOARD, and a new storefront (a
    name of its own: the limiter's keys in the shared test Redis outlive the test)."""

    @asynccontextmanager
    async def serve(**overrides: str) -> AsyncIterator[Shop]:
        env = {
            "EMPORIUM_DATA_DIR": str(tmp_path / "data"),
            "EMPORIUM_EVENT_LOG_URL": f"sqlite:///{tmp_path}/events.db",
            "EMPORIUM_ADMIN_TOKEN": TOKEN,
            **overrides,
        }
        db = None
        if request.param == "cluster":
            db = mysql_url_with_database(request.getfixturevalue("mysql_url"), unique_name("inv_lim"))
            env["EMPORIUM_DATABASE_URL"] = db
            env["EMPORIUM_CACHE_URL"] = request.getfixturevalue("redis_url")
        settings = load_settings(env=env)
        container = Container(settings)
        try:
            async with (
                served_app(create_app(settings, container=container)) as base,
                httpx.AsyncClient(base_url=base, timeout=30) as client,
                httpx.AsyncClient(base_url=base, timeout=30) as anonymous,
            ):
                stocked = await client.put("/v1/stock/shop:HOARD", json={"on_hand": 1500}, headers=ADMIN)
                assert stocked.status_code == 200, stocked.text
                name = f"shop-{uuid.uuid4().hex[:10]}"
                shop = await client.post("/v1/storefronts", json={"storefront_id": name}, headers=ADMIN)
                assert shop.status_code == 201, shop.text
                client.headers["X-Api-Key"] = shop.json()["api_key"]
                yield Shop(client, anonymous, settings, container)
        finally:
            if db is not None:
                drop_mysql_database(db)

    return serve


async def test_a_storefront_customer_cannot_hoard(serve_shop: ServeShop) -> None:
    async with serve_shop() as shop:
        cap = shop.settings.customer_hold_units
        assert (await shop.reserve("shop:HOARD", "mallory", cap - 10)).status_code == 201
        over = await shop.reserve("shop:HOARD", "mallory", 11)
        assert over.status_code == 429 and over.json()["extra"]["policy"] == "customer-units-900s"
        assert over.json()["extra"]["limit"] == cap and over.json()["extra"]["window_s"] == 900
        assert 1 < int(over.headers["retry-after"]) <= 900
        assert over.headers["ratelimit-policy"] == f'"customer-units-900s";q={cap};w=900'
        assert over.headers["ratelimit"] == f'"customer-units-900s";r=0;t={over.headers["retry-after"]}'
        assert (await shop.reserve("shop:HOARD", "mallory", 10)).status_code == 201  # exactly the cap
        assert (await shop.reserve("shop:HOARD", "bob", 5)).status_code == 201
        stock = (await shop.anonymous.get("/v1/stock/shop:HOARD")).json()
        assert stock["held"] == cap + 5

        # every ask counts, granted or not: unknown SKUs and asks over the cap alike
        burst = Counter([(await shop.reserve("shop:GONE", "eve", 1)).status_code for _ in range(cap + 5)])
        assert burst == {404: cap, 429: 5}, burst
        assert (await shop.reserve("shop:HOARD", "eve", 1)).status_code == 429
        assert (await shop.reserve("shop:HOARD", "frank", cap + 1)).status_code == 429  # never fits
        assert (await shop.anonymous.get("/v1/stock/shop:HOARD")).json()["held"] == cap + 5


async def test_the_storefront_limit_counts_every_reservation_call(serve_shop: ServeShop) -> None:
    """One window per storefront over the inventory routes: reservations, malformed ones and reads."""
    async with serve_shop(EMPORIUM_RATE_LIMIT_STOREFRONT="6/minute") as shop:
        made = await shop.reserve("shop:HOARD", "c1", 1)
        assert made.status_code == 201, made.text
        assert (await shop.reserve("shop:HOARD", "c2", 0)).status_code == 422
        assert (await shop.client.post("/v1/reservations", content=b"{}")).status_code == 415
        assert (await shop.reserve("shop:HOARD", "c3", 1, hold_seconds=10**6)).status_code == 422
        assert (await shop.client.get(f"/v1/reservations/{made.json()['reservation_id']}")).status_code == 200
        assert (await shop.reserve("shop:HOARD", "c4", 1)).status_code == 201  # the 6th call
        refused = await shop.reserve("shop:HOARD", "c5", 1)
        assert refused.status_code == 429 and refused.json()["extra"]["policy"] == "storefront-60s"
        assert refused.headers["ratelimit-policy"] == '"storefront-60s";q=6;w=60'
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert (await shop.client.get(f"/v1/reservations/{made.json()['reservation_id']}")).status_code == 429
        assert (await shop.anonymous.get("/v1/stock/shop:HOARD")).json()["held"] == 2


async def test_concurrent_reservations_are_counted_exactly(serve_shop: ServeShop) -> None:
    """Reservations sent at once (on the cluster, decided many per reserve script, which counts their
    storefront's window once per batch): exactly the limit is granted, every ask counts, and the
    limiter reads the same count back."""
    async with serve_shop(EMPORIUM_RATE_LIMIT_STOREFRONT="10/minute") as shop:
        asks = [shop.reserve("shop:HOARD", f"c{i}", 1) for i in range(25)]
        statuses = Counter([answer.status_code for answer in await asyncio.gather(*asks)])
        assert statuses == {201: 10, 429: 15}, statuses
        assert (await shop.client.get("/v1/reservations/r-none")).status_code == 429
        assert (await shop.anonymous.get("/v1/stock/shop:HOARD")).json()["held"] == 10


async def test_a_cluster_reservation_makes_no_limiter_call_of_its_own(serve_shop: ServeShop) -> None:
    """On the cluster the reserve script counts the windows: no limiter round trip per reservation."""
    async with serve_shop() as shop:
        storage: Any = shop.container.rate_limit_storage()
        calls: Counter[str] = Counter()
        for name in ("incr", "acquire_entry"):
            counted = getattr(storage, name)

            def spy(*args: Any, _name: str = name, _counted: Any = counted, **kwargs: Any) -> Any:
                calls[_name] += 1
                return _counted(*args, **kwargs)  # a value in process, an awaitable on Redis

            setattr(storage, name, spy)
        assert (await shop.reserve("shop:HOARD", "grace", 2)).status_code == 201
        if shop.settings.database_url.startswith("sqlite"):
            assert calls == {"incr": 1, "acquire_entry": 1}, calls  # in process: storefront, units
        else:
            assert calls == {}, calls


async def test_callers_the_route_refuses_are_limited_too(serve_shop: ServeShop) -> None:
    """Anonymous callers and suppliers never reach the reservation handler (401, 403): the limiter still
    counts them, before the route refuses them."""
    async with serve_shop(EMPORIUM_RATE_LIMIT_ANONYMOUS="4/minute") as shop:  # the stock PUT was one
        body = {"sku": "shop:HOARD", "quantity": 1, "customer_id": "mallory"}
        answers = [(await shop.anonymous.post("/v1/reservations", json=body)).status_code for _ in range(5)]
        assert answers == [401, 401, 401, 429, 429], answers
