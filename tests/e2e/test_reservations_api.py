"""The reservation API end to end: the real app (create_app) over the embedded and cluster engines.

The flash-sale test sends 20,000 concurrent reservations for 1,000 units through HTTP and then
checks the three views agree: the API, the truth store's counters/ledger/reservations, and (cluster)
Redis' fast-path counters.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from inventory_support import (
    audit_mysql,
    audit_sqlite,
    drop_mysql_database,
    mysql_url_with_database,
    unique_name,
)
from litestar import Litestar

from emporium.app import create_app
from inventory.cluster import ClusterEngine
from kernel.settings import load_settings

TOKEN = "test-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


class Api:
    """A real uvicorn server (same event loop as the test) and an HTTP client for it that sends the key
    of a storefront (``storefront_key``), as every reservation call must."""

    def __init__(
        self, client: httpx.AsyncClient, base: str, app: Litestar, kind: str, db: str, storefront_key: str
    ) -> None:
        self.client, self.base, self.app, self.kind, self.db = client, base, app, kind, db
        self.storefront_key = storefront_key

    @property
    def engine(self) -> Any:
        return inventory_module(self.app).engine

    def audit(self, sku: str) -> Any:
        return audit_sqlite(self.db, sku) if self.kind == "sqlite" else audit_mysql(self.db, sku)


def inventory_module(app: Litestar) -> Any:
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            module = handler.opt.get("inventory_module")
            if module is not None:
                return module
    raise AssertionError("inventory routes are not mounted")


@pytest.fixture(params=["sqlite", pytest.param("cluster", marks=pytest.mark.cluster)])
async def api(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    served_app: Callable[[Litestar], AbstractAsyncContextManager[str]],
) -> AsyncIterator[Api]:
    env = {
        "EMPORIUM_DATA_DIR": str(tmp_path / "data"),
        "EMPORIUM_EVENT_LOG_URL": f"sqlite:///{tmp_path}/events.db",
        "EMPORIUM_ADMIN_TOKEN": TOKEN,
        "EMPORIUM_RATE_LIMIT_STOREFRONT": "1000000/second",  # the flash sale is one storefront's
    }
    if request.param == "sqlite":
        db = str(tmp_path / "data" / "emporium.db")
        env["EMPORIUM_DATABASE_URL"] = f"sqlite:///{db}"
    else:
        db = mysql_url_with_database(request.getfixturevalue("mysql_url"), unique_name("inv_e2e"))
        env["EMPORIUM_DATABASE_URL"] = db
        env["EMPORIUM_CACHE_URL"] = request.getfixturevalue("redis_url")
    app = create_app(load_settings(env=env))
    try:
        async with served_app(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
            shop = await client.post("/v1/storefronts", json={"storefront_id": "shop"}, headers=ADMIN)
            assert shop.status_code == 201, shop.text
            client.headers["X-Api-Key"] = shop.json()["api_key"]
            yield Api(client, base, app, request.param, db, shop.json()["api_key"])
    finally:
        if request.param == "cluster":
            drop_mysql_database(db)


async def test_flash_sale_20k_requests_for_1000_units(api: Api) -> None:
    c = api.client
    r = await c.put("/v1/stock/shop:FLASH", json={"on_hand": 1000}, headers=ADMIN)
    assert r.status_code == 200, r.text
    sem = asyncio.Semaphore(200)
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(
        api.base, connector=connector, headers={"X-Api-Key": api.storefront_key}
    ) as session:

        async def buy(i: int) -> int:
            async with (
                sem,
                session.post(
                    "/v1/reservations",
                    json={"sku": "shop:FLASH", "quantity": 1, "customer_id": f"cust-{i}"},
                    headers={"Idempotency-Key": f"flash-{i}"},
                ) as resp,
            ):
                await resp.read()
                return resp.status

        started = time.perf_counter()
        codes = Counter(await asyncio.gather(*(buy(i) for i in range(20_000))))
        elapsed = time.perf_counter() - started
    assert codes == {201: 1000, 409: 19_000}, codes
    stock = (await c.get("/v1/stock/shop:FLASH")).json()
    assert (stock["on_hand"], stock["held"], stock["sold"], stock["available"]) == (1000, 1000, 0, 0)
    audit = api.audit("shop:FLASH")
    assert audit.consistent and audit.held == 1000, audit
    if api.kind == "cluster":
        engine: ClusterEngine = api.engine
        fast = await engine.fast_path_stock("shop:FLASH")
        assert fast is not None and (fast.on_hand, fast.held, fast.sold) == (1000, 1000, 0)
    print(f"{api.kind}: 20k reservations through the API in {elapsed:.1f}s ({20_000 / elapsed:.0f}/s)")


async def test_reservation_lifecycle_and_errors(api: Api) -> None:
    c = api.client
    assert (await c.put("/v1/stock/shop:LIFE", json={"on_hand": 5})).status_code == 401
    assert (
        await c.put("/v1/stock/shop:LIFE", json={"on_hand": 5}, headers={"Authorization": "Bearer nope"})
    ).status_code == 403
    r = await c.put("/v1/stock/shop:LIFE", json={"on_hand": 5, "per_customer_limit": 3}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["available"] == 5
    for bad in ({"on_hand": -1}, {"on_hand": 1.5}, {"on_hand": "7"}, {}):
        assert (await c.put("/v1/stock/shop:LIFE", json=bad, headers=ADMIN)).status_code == 422

    body = {"sku": "shop:LIFE", "quantity": 2, "customer_id": "ann"}
    first = await c.post("/v1/reservations", json=body, headers={"Idempotency-Key": "ann-1"})
    assert first.status_code == 201, first.text
    res = first.json()
    assert set(res) >= {"reservation_id", "sku", "quantity", "status", "expires_at"}
    assert res["status"] == "held" and res["quantity"] == 2
    again = await c.post("/v1/reservations", json=body, headers={"Idempotency-Key": "ann-1"})
    assert again.status_code == 201 and again.json()["reservation_id"] == res["reservation_id"]
    reused = await c.post(
        "/v1/reservations", json={**body, "quantity": 1}, headers={"Idempotency-Key": "ann-1"}
    )
    assert reused.status_code == 409

    over = await c.post("/v1/reservations", json=body)
    assert over.status_code == 429 and over.json()["extra"]["remaining"] == 1
    short = await c.post("/v1/reservations", json={"sku": "shop:LIFE", "quantity": 4, "customer_id": "bob"})
    assert short.status_code == 409 and short.json()["extra"]["available"] == 3

    for bad in (0, -1, 10**12, 1.5, "1", None, True):
        r = await c.post("/v1/reservations", json={**body, "quantity": bad})
        assert r.status_code == 422, (bad, r.text)
        assert "quantity" in r.json()["detail"]
    as_json = {"Content-Type": "application/json"}
    assert (await c.post("/v1/reservations", content=b"{not json", headers=as_json)).status_code == 400
    assert (await c.post("/v1/reservations", content=b"{not json")).status_code == 415  # not said to be JSON
    assert (await c.post("/v1/reservations", json={**body, "sku": "GHOST"})).status_code == 404
    assert (await c.post("/v1/reservations", json={**body, "customer_id": ""})).status_code == 422
    empty_key = await c.post("/v1/reservations", json=body, headers={"Idempotency-Key": ""})
    assert empty_key.status_code == 422 and "Idempotency-Key" in empty_key.json()["detail"]

    rid = res["reservation_id"]
    ok = await c.post(f"/v1/reservations/{rid}/confirm")
    assert ok.status_code == 200 and ok.json()["status"] == "confirmed"
    assert (await c.post(f"/v1/reservations/{rid}/confirm")).status_code == 200
    assert (await c.delete(f"/v1/reservations/{rid}")).status_code == 409
    assert (await c.post(f"/v1/reservations/{'0' * 32}/confirm")).status_code == 404
    assert (await c.delete(f"/v1/reservations/{'0' * 32}")).status_code == 404

    held = (
        await c.post("/v1/reservations", json={"sku": "shop:LIFE", "quantity": 1, "customer_id": "cy"})
    ).json()
    assert (await c.delete(f"/v1/reservations/{held['reservation_id']}")).status_code == 204
    assert (await c.delete(f"/v1/reservations/{held['reservation_id']}")).status_code == 204
    late = await c.post(f"/v1/reservations/{held['reservation_id']}/confirm")
    assert late.status_code == 409 and late.json()["extra"]["status"] == "released"

    stock = (await c.get("/v1/stock/shop:LIFE")).json()
    assert {k: stock[k] for k in ("sku", "on_hand", "held", "sold", "available")} == {
        "sku": "shop:LIFE", "on_hand": 5, "held": 0, "sold": 2, "available": 3,
    }  # fmt: skip
    assert (await c.get("/v1/stock/GHOST")).status_code == 404
    assert api.audit("shop:LIFE").consistent


async def test_holds_expire_through_the_sweeper(api: Api) -> None:
    c = api.client
    await c.put("/v1/stock/shop:EXP", json={"on_hand": 1}, headers=ADMIN)
    r = await c.post(
        "/v1/reservations", json={"sku": "shop:EXP", "quantity": 1, "customer_id": "x", "hold_seconds": 1}
    )
    assert r.status_code == 201
    rid = r.json()["reservation_id"]
    assert (
        await c.post("/v1/reservations", json={"sku": "shop:EXP", "quantity": 1, "customer_id": "y"})
    ).status_code == 409
    deadline = time.monotonic() + 10
    while (await c.get("/v1/stock/shop:EXP")).json()["available"] != 1:
        assert time.monotonic() < deadline, "the hold never expired"
        await asyncio.sleep(0.2)
    late = await c.post(f"/v1/reservations/{rid}/confirm")
    assert late.status_code == 409 and late.json()["extra"]["status"] == "expired"
    assert (
        await c.post("/v1/reservations", json={"sku": "shop:EXP", "quantity": 1, "customer_id": "y"})
    ).status_code == 201
    ready = await c.get("/readyz")
    assert ready.json()["checks"]["inventory.engine"] == "ok", ready.text
