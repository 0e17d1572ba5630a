"""The storefront through the real app (create_app on a temp data dir, embedded stack, in-process
projectors): catalog events in -> search with typos, facets and filters; stock-outs vanish at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from kernel.contracts.events import (
    ACTIVITY_TOPIC,
    CATALOG_TOPIC,
    INVENTORY_TOPIC,
    DeliveryZoneUpdated,
    Envelope,
    Product,
    ProductUpserted,
    SearchPerformed,
    ZoneWarehouse,
    decode_event,
    new_event,
)
from kernel.eventlog.port import EventLog
from kernel.eventlog.processing import publish_events
from kernel.settings import Settings
from search.projectors import LIVE_SEARCH_GROUP

ADMIN_TOKEN = "e2e-admin-token"
CATALOG = [
    ("Basmati Rice Premium 5 kg", "Daawat", ("Grocery", "Rice"), "450", 4.5, "wh-north"),
    ("Brown Basmati Rice 1 kg", "India Gate", ("Grocery", "Rice"), "160", 4.1, "wh-south"),
    ("Green Tea Classic 100 bags", "Tetley", ("Grocery", "Beverages", "Tea"), "320", 4.3, "wh-north"),
    ("Masala Chai Tea 250 g", "Tata Tea", ("Grocery", "Beverages", "Tea"), "140", 3.9, "wh-east"),
    ("Men Slim Fit Cotton Shirt", "Roadster", ("Fashion", "Men", "Shirts"), "899", 4.0, "wh-south"),
    ("Men Running Shoes", "Puma", ("Fashion", "Men", "Footwear"), "3499", 4.4, "wh-north"),
    ("Women Printed Kurta", "Fabindia", ("Fashion", "Women", "Kurtas"), "1299", 4.6, "wh-east"),
    ("Women Running Shoes", "Puma", ("Fashion", "Women", "Footwear"), "2999", 4.2, "wh-south"),
]


def catalog_events() -> list[Envelope]:
    events = []
    for n, (title, brand, path, price, rating, warehouse) in enumerate(CATALOG):
        product = Product(
            product_id=f"e2e:{n}",
            supplier_id="e2e",
            sku=f"E2E-{n}",
            title=title,
            brand=brand,
            category_path=path,
            price=Decimal(price),
            rating=rating,
            stock={warehouse: 10},
        )
        events.append(
            new_event(ProductUpserted(product=product), key=product.product_id, revision=1, producer="t")
        )
    return events


class Shop:
    """The app under test plus this test's own client of the same event log (the app runs on the test
    client's event loop, so the test talks to the log through its own connection, like another process)."""

    def __init__(self, client: AsyncTestClient, event_log: EventLog) -> None:
        self.client = client
        self.event_log = event_log

    async def publish(self, events: list[Envelope]) -> None:
        await publish_events(self.event_log, events)
        await self.settle()

    async def settle(self) -> None:
        for _ in range(2000):
            lags = [await self.event_log.lag(t, LIVE_SEARCH_GROUP) for t in (CATALOG_TOPIC, INVENTORY_TOPIC)]
            if not any(lags):
                return
            await asyncio.sleep(0.005)
        raise AssertionError("projector did not catch up")

    async def search(self, **params: Any) -> dict[str, Any]:
        response = await self.client.get("/v1/search", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    async def titles(self, **params: Any) -> list[str]:
        return [h["title"] for h in (await self.search(**params))["hits"]]


@pytest.fixture
async def shop(
    tmp_path: Path,
    embedded_settings: Callable[..., Settings],
    running_app: Callable[..., AbstractAsyncContextManager[Any]],
) -> AsyncIterator[Shop]:
    settings = embedded_settings(tmp_path / "data", admin_token=ADMIN_TOKEN)
    async with running_app(settings, own_event_log=True) as app:
        shop = Shop(app.client, app.event_log)
        await shop.publish(catalog_events())
        yield shop


async def test_typos_facets_filters_and_sorting(shop: Shop) -> None:
    assert set(await shop.titles(q="basmti rce")) == {"Basmati Rice Premium 5 kg", "Brown Basmati Rice 1 kg"}
    body = await shop.search(q="running shoes")
    assert {h["title"] for h in body["hits"]} == {"Men Running Shoes", "Women Running Shoes"}
    assert body["total"] == 2 and {b["value"]: b["count"] for b in body["facets"]["brand"]} == {"Puma": 2}
    assert body["hits"][0]["highlights"]
    men = await shop.search(category="Fashion>Men", sort="price_asc")
    assert [h["title"] for h in men["hits"]] == ["Men Slim Fit Cotton Shirt", "Men Running Shoes"]
    assert all(h["category"].startswith("Fashion>Men") for h in men["hits"])
    tea = await shop.titles(brand=["Tetley", "Tata Tea"], price_max="200")
    assert tea == ["Masala Chai Tea 250 g"]
    assert await shop.titles(rating_min="4.5", sort="rating") == [
        "Women Printed Kurta",
        "Basmati Rice Premium 5 kg",
    ]
    suggestions = (await shop.client.get("/v1/suggest", params={"q": "basm"})).json()["suggestions"]
    assert suggestions and all("basmati" in s.lower() for s in suggestions)


async def test_cursor_pages_cover_everything_once(shop: Shop) -> None:
    seen: list[str] = []
    params: dict[str, Any] = {"sort": "price_desc", "size": 3}
    while True:
        body = await shop.search(**params)
        seen += [h["product_id"] for h in body["hits"]]
        if not body["next_cursor"]:
            break
        params["cursor"] = body["next_cursor"]
    assert len(seen) == len(set(seen)) == len(CATALOG)


async def test_stock_out_vanishes_at_once_and_restock_returns(shop: Shop) -> None:
    """Through the inventory API: stock set to 0 -> stock event -> projector -> gone from search."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    title = "Green Tea Classic 100 bags"
    assert title in await shop.titles(q="green tea")

    async def until(present: bool, **params: Any) -> None:
        for _ in range(500):
            if (title in await shop.titles(q="green tea", **params)) == present:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{title!r} present={not present} after 5 s")

    sold_out = {"warehouses": {"wh-north": 0}}  # its stock is kept per warehouse (the catalog's)
    response = await shop.client.put("/v1/stock/e2e:E2E-2", json=sold_out, headers=admin)
    assert response.status_code == 200, response.text
    await until(False)
    product = (await shop.client.get("/v1/products/e2e:2")).json()
    assert product["in_stock"] is False
    assert title in await shop.titles(q="green tea", in_stock="false")
    restocked = {"warehouses": {"wh-north": 7}}
    response = await shop.client.put("/v1/stock/e2e:E2E-2", json=restocked, headers=admin)
    assert response.status_code == 200, response.text
    await until(True)
    assert (await shop.client.get("/v1/products/e2e:2")).json()["in_stock"] is True


async def test_delivery_zone_filter_eta_and_zone_events(shop: Shop) -> None:
    body = await shop.search(deliver_to="KOL", size=50)  # wh-east 24h, wh-north 72h
    etas = {h["title"]: h["eta_hours"] for h in body["hits"]}
    assert etas["Masala Chai Tea 250 g"] == 24 and etas["Men Running Shoes"] == 72
    assert "Brown Basmati Rice 1 kg" not in etas  # wh-south does not ship to KOL
    bad = await shop.client.get("/v1/search", params={"deliver_to": "ATLANTIS"})
    assert bad.status_code == 400 and "KOL" in bad.json()["extra"]["zones"]
    update = DeliveryZoneUpdated(
        zone="ATLANTIS", warehouses=(ZoneWarehouse(warehouse_id="wh-south", eta_hours=6),)
    )
    await publish_events(shop.event_log, [new_event(update, key="ATLANTIS", revision=1, producer="t")])
    for _ in range(400):
        response = await shop.client.get("/v1/search", params={"deliver_to": "ATLANTIS"})
        if response.status_code == 200:
            break
        await asyncio.sleep(0.01)
    assert {h["eta_hours"] for h in response.json()["hits"]} == {6}


async def test_bad_parameters_are_json_4xx(shop: Shop) -> None:
    for query in (
        "sort=cheap",
        "price_min=-3",
        "size=500",
        "q=" + "a" * 300,
        "cursor=bogus",
        "price_min=9&price_max=1",
    ):
        response = await shop.client.get(f"/v1/search?{query}")
        assert response.status_code == 400, (query, response.text)
        assert response.json()["detail"]
    assert (await shop.client.get("/v1/products/nope:1")).status_code == 404


async def test_each_search_publishes_an_activity_event(shop: Shop) -> None:
    await shop.client.get("/v1/search", params={"q": "kurta"}, headers={"X-User-Id": "u-42"})
    consumer = shop.event_log.consumer([ACTIVITY_TOPIC], "e2e-activity-check")
    await consumer.start()
    try:
        found: list[SearchPerformed] = []
        for _ in range(40):
            for record in await consumer.poll(100, 0.1):
                payload = decode_event(record.value).payload
                if isinstance(payload, SearchPerformed) and payload.user_id == "u-42":
                    found.append(payload)
            if found:
                break
        assert found and found[0].query == "kurta" and found[0].total == 1
    finally:
        await consumer.stop()


async def test_openapi_documents_the_storefront(shop: Shop) -> None:
    schema = (await shop.client.get("/docs/openapi.json")).json()
    assert {"/v1/search", "/v1/suggest", "/v1/products/{product_id}"} <= set(schema["paths"])
    assert "SearchResponse" in str(schema["components"])
