"""Storefront activity end to end (the real app, embedded stack): product views and searches carry the
region, views the category and brand, a confirmed reservation publishes ``Purchased`` with the price and
category the catalog gives, and the in-process archive puts them all in the lake."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from analytics.archive import Lake
from kernel.contracts.events import (
    ACTIVITY_TOPIC,
    CATALOG_TOPIC,
    INVENTORY_TOPIC,
    Payload,
    Product,
    ProductUpserted,
    ProductViewed,
    Purchased,
    SearchPerformed,
    decode_event,
    new_event,
)
from kernel.eventlog.port import EventLog
from kernel.eventlog.processing import publish_events
from kernel.settings import Settings
from search.projectors import LIVE_SEARCH_GROUP

ADMIN = {"Authorization": "Bearer activity-admin"}
PRODUCT = Product(
    product_id="acme:kettle",
    supplier_id="acme",
    sku="KET-1",
    title="Steel Electric Kettle 1.5 l",
    brand="Acme",
    category_path=("Home", "Kitchen"),
    price=Decimal("1299.50"),
)


class Shop:
    def __init__(self, client: Any, event_log: EventLog, settings: Settings) -> None:
        self.client, self.event_log, self.settings = client, event_log, settings

    async def settle(self) -> None:
        for _ in range(2000):
            lags = [await self.event_log.lag(t, LIVE_SEARCH_GROUP) for t in (CATALOG_TOPIC, INVENTORY_TOPIC)]
            if not any(lags):
                return
            await asyncio.sleep(0.005)
        raise AssertionError("projectors did not catch up")

    async def activity(self, want: Callable[[list[Payload]], bool]) -> list[Payload]:
        consumer = self.event_log.consumer([ACTIVITY_TOPIC], "activity-check", start_from="earliest")
        await consumer.start()
        seen: list[Payload] = []
        try:
            for _ in range(100):
                seen += [decode_event(r.value).payload for r in await consumer.poll(100, 0.1)]
                if want(seen):
                    return seen
        finally:
            await consumer.stop()
        raise AssertionError(f"activity not published; saw {seen}")


@pytest.fixture
async def shop(
    tmp_path: Path,
    embedded_settings: Callable[..., Settings],
    running_app: Callable[..., AbstractAsyncContextManager[Any]],
) -> AsyncIterator[Shop]:
    settings = embedded_settings(tmp_path / "data", admin_token="activity-admin", archive_flush_s=0.5)
    async with running_app(settings, own_event_log=True) as app:
        shop = Shop(app.client, app.event_log, settings)
        event = new_event(ProductUpserted(product=PRODUCT), key=PRODUCT.product_id, revision=1, producer="t")
        await publish_events(shop.event_log, [event])
        await shop.settle()
        stock = await shop.client.put("/v1/stock/acme:KET-1", json={"on_hand": 10}, headers=ADMIN)
        assert stock.status_code == 200, stock.text
        key = await shop.client.post("/v1/storefronts", json={"storefront_id": "web"}, headers=ADMIN)
        assert key.status_code == 201, key.text
        shop.client.headers["X-Api-Key"] = key.json()["api_key"]
        await shop.settle()
        yield shop


async def test_views_searches_and_purchases_become_activity_and_reach_the_lake(shop: Shop) -> None:
    c = shop.client
    view = await c.get("/v1/products/acme:kettle", headers={"X-User-Id": "ann", "X-Region": "blr"})
    assert view.status_code == 200, view.text
    assert (
        await c.get("/v1/search", params={"q": "kettle"}, headers={"X-Session-Id": "s-1"})
    ).status_code == 200
    held = await c.post("/v1/reservations", json={"sku": "acme:KET-1", "quantity": 2, "customer_id": "ann"})
    assert held.status_code == 201, held.text
    order_id = held.json()["reservation_id"]
    headers = {"X-Session-Id": "s-1", "X-Region": "DEL"}
    for _ in range(2):  # a repeated confirm is one sale
        confirmed = await c.post(f"/v1/reservations/{order_id}/confirm", headers=headers)
        assert confirmed.status_code == 200, confirmed.text

    def complete(seen: list[Payload]) -> bool:
        kinds = {type(p) for p in seen}
        return {ProductViewed, SearchPerformed, Purchased} <= kinds

    seen = await shop.activity(complete)
    (viewed,) = [p for p in seen if isinstance(p, ProductViewed)]
    assert (viewed.user_id, viewed.region, viewed.category, viewed.brand) == (
        "ann",
        "BLR",
        "Home>Kitchen",
        "Acme",
    )
    (searched,) = [p for p in seen if isinstance(p, SearchPerformed)]
    assert (searched.session_id, searched.region) == ("s-1", None)
    (sale,) = [p for p in seen if isinstance(p, Purchased)]
    assert (sale.order_id, sale.user_id, sale.session_id, sale.region) == (order_id, "ann", "s-1", "DEL")
    (item,) = sale.items
    assert (item.product_id, item.sku, item.quantity, item.unit_price) == (
        "acme:kettle",
        "acme:KET-1",
        2,
        Decimal("1299.50"),
    )
    assert (item.category, item.brand) == ("Home>Kitchen", "Acme")

    lake = Lake(shop.settings.lake_url)
    for _ in range(100):  # the in-process archive flushes within archive_flush_s
        if lake.parquet_files() and lake.read().num_rows >= 3:
            break
        await asyncio.sleep(0.1)
    rows = lake.read().to_pylist()
    assert sorted(r["event_type"] for r in rows) == ["purchase", "search", "view"]
    (purchase,) = [r for r in rows if r["event_type"] == "purchase"]
    assert (purchase["order_id"], purchase["unit_price"], purchase["region"]) == (
        order_id,
        Decimal("1299.50"),
        "DEL",
    )


async def test_a_search_takes_its_region_from_deliver_to_without_the_header(shop: Shop) -> None:
    zones = await shop.client.get("/v1/search", params={"q": "kettle", "deliver_to": "nope"})
    known = zones.json().get("extra", {}).get("zones") or []
    assert known, zones.text
    await shop.client.get(
        "/v1/search", params={"q": "kettle", "deliver_to": known[0].lower()}, headers={"X-User-Id": "z"}
    )
    seen = await shop.activity(lambda s: any(isinstance(p, SearchPerformed) and p.user_id == "z" for p in s))
    (searched,) = [p for p in seen if isinstance(p, SearchPerformed) and p.user_id == "z"]
    assert searched.region == known[0].upper()
