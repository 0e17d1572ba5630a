"""Carts, wishlists and checkouts end to end on the embedded stack: the real app, a catalog published to
its event log (prices reach the commerce context and stock the inventory through their consumers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from inventory_support import drop_mysql_database, mysql_url_with_database, unique_name
from litestar.testing import AsyncTestClient

from commerce.prices import PRICES_GROUP
from inventory.events import FEED_GROUP
from kernel.contracts.events import (
    ACTIVITY_TOPIC,
    CATALOG_TOPIC,
    Envelope,
    Product,
    ProductUpserted,
    decode_event,
    new_event,
)
from kernel.eventlog.port import EventLog
from kernel.eventlog.processing import publish_events
from kernel.settings import Settings

TOKEN = "commerce-admin"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
UNLIMITED = "1000000/second"


def product(n: int, price: str, stock: int, revision: int = 1) -> Envelope:
    p = Product(
        product_id=f"shop:{n}", supplier_id="shop", sku=f"S-{n}", title=f"Thing {n}",
        price=Decimal(price), stock={"wh": stock},
    )  # fmt: skip
    return new_event(ProductUpserted(product=p), key=p.product_id, revision=revision, producer="t")


class Shop:
    def __init__(self, client: AsyncTestClient[Any], event_log: EventLog, key: str) -> None:
        self.client, self.event_log = client, event_log
        self.headers = {"X-Api-Key": key}

    async def publish(self, events: list[Envelope]) -> None:
        await publish_events(self.event_log, events)
        for _ in range(2000):
            lags = [await self.event_log.lag(CATALOG_TOPIC, g) for g in (PRICES_GROUP, FEED_GROUP)]
            if not any(lags):
                return
            await asyncio.sleep(0.005)
        raise AssertionError("consumers did not catch up")

    async def call(self, method: str, path: str, status: int, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        answer = await self.client.request(method, path, headers=headers, **kwargs)
        assert answer.status_code == status, answer.text
        return answer.json() if answer.content else None

    async def put(self, customer: str, sku: str, quantity: int) -> Any:
        return await self.call("PUT", f"/v1/carts/{customer}/items/{sku}", 200, json={"quantity": quantity})

    async def checkout(self, customer: str, key: str, status: int = 201, **body: Any) -> Any:
        return await self.call(
            "POST",
            "/v1/checkouts",
            status,
            json={"customer_id": customer, **body},
            headers={"Idempotency-Key": key},
        )

    async def available(self, sku: str) -> int:
        answer = await self.client.get(f"/v1/stock/{sku}")
        return int(answer.json()["available"])


@pytest.fixture(params=["sqlite", pytest.param("cluster", marks=pytest.mark.cluster)])
async def shop(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    embedded_settings: Callable[..., Settings],
    running_app: Callable[..., AbstractAsyncContextManager[Any]],
) -> AsyncIterator[Shop]:
    """The embedded stack, or the cluster's relational store and engine (MariaDB + Redis of the local
    stack) under the same app; the event log stays SQLite, so the test can publish to it."""
    cluster: dict[str, str] = {}
    if request.param == "cluster":
        db = mysql_url_with_database(request.getfixturevalue("mysql_url"), unique_name("commerce_e2e"))
        cluster = {"database_url": db, "cache_url": request.getfixturevalue("redis_url")}
    settings = embedded_settings(
        tmp_path / "data", admin_token=TOKEN, rate_limit_storefront=UNLIMITED, **cluster
    )
    try:
        async with running_app(settings, own_event_log=True) as app:
            created = await app.client.post("/v1/storefronts", json={"storefront_id": "web"}, headers=ADMIN)
            assert created.status_code == 201, created.text
            shop = Shop(app.client, app.event_log, created.json()["api_key"])
            await shop.publish(
                [
                    product(n, price, stock)
                    for n, price, stock in ((1, "10.50", 10), (2, "99", 3), (3, "5", 1))
                ]
            )
            yield shop
    finally:
        if cluster:
            drop_mysql_database(cluster["database_url"])


async def test_cart_lines_prices_and_availability(shop: Shop) -> None:
    await shop.put("u1", "shop:S-1", 2)
    cart = await shop.put("u1", "shop:S-2", 4)
    items = {i["sku"]: i for i in cart["items"]}
    first = items["shop:S-1"]
    assert (first["quantity"], first["unit_price"], first["available"]) == (2, "10.5", True)
    assert items["shop:S-2"]["available"] is False and items["shop:S-2"]["available_quantity"] == 3
    assert cart["total"] == "417" and not any(i["price_changed"] for i in cart["items"])
    await shop.publish([product(1, "12", 10, revision=2)])
    cart = await shop.call("GET", "/v1/carts/u1", 200)
    line = next(i for i in cart["items"] if i["sku"] == "shop:S-1")
    assert (line["price_changed"], line["unit_price"], line["previous_price"]) == (True, "12", "10.5")
    cart = await shop.call("DELETE", "/v1/carts/u1/items/shop:S-2", 200)
    assert [i["sku"] for i in cart["items"]] == ["shop:S-1"]


async def test_cart_refusals_are_json(shop: Shop) -> None:
    assert (await shop.client.get("/v1/carts/u1")).status_code == 401
    bad = await shop.call("PUT", "/v1/carts/u1/items/shop:S-1", 422, json={"quantity": 0})
    assert "quantity" in bad["detail"]
    missing = await shop.call("PUT", "/v1/carts/u1/items/shop:NOPE", 404, json={"quantity": 1})
    assert missing["extra"]["sku"] == "shop:NOPE"
    await shop.call("PUT", "/v1/carts/u1/items/shop:S-1", 415, content=b"quantity=1",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    await shop.call("PUT", "/v1/carts/u%20x/items/shop:S-1", 422, json={"quantity": 1})
    await shop.call("POST", "/v1/checkouts", 422, json={"customer_id": "u1"})  # no Idempotency-Key
    await shop.checkout("nobody", "k-empty", status=409)
    await shop.call("POST", "/v1/checkouts/cnope/confirm", 404, json={})


async def test_parallel_adds_to_one_cart_lose_no_line(shop: Shop) -> None:
    await shop.publish([product(n, "1", 100) for n in range(10, 40)])
    await asyncio.gather(*(shop.put("busy", f"shop:S-{n}", 1 + n % 3) for n in range(10, 40)))
    cart = await shop.call("GET", "/v1/carts/busy", 200)
    assert {i["sku"]: i["quantity"] for i in cart["items"]} == {
        f"shop:S-{n}": 1 + n % 3 for n in range(10, 40)
    }


async def test_merge_is_one_step_and_idempotent(shop: Shop) -> None:
    await shop.put("guest-1", "shop:S-1", 1)
    await shop.put("guest-1", "shop:S-2", 1)
    await shop.put("u2", "shop:S-1", 2)
    merges = await asyncio.gather(
        *(shop.call("POST", "/v1/carts/u2/merge", 200, json={"from": "guest-1"}) for _ in range(5))
    )
    final = {i["sku"]: i["quantity"] for i in merges[-1]["items"]}
    assert final == {"shop:S-1": 3, "shop:S-2": 1}
    assert (await shop.call("GET", "/v1/carts/guest-1", 200))["items"] == []


async def test_wishlist(shop: Shop) -> None:
    await shop.call("PUT", "/v1/wishlists/u3/items/shop:1", 200)
    listed = await shop.call("PUT", "/v1/wishlists/u3/items/shop:2", 200)
    assert {i["product_id"] for i in listed["items"]} == {"shop:1", "shop:2"}
    listed = await shop.call("DELETE", "/v1/wishlists/u3/items/shop:1", 200)
    assert [i["product_id"] for i in listed["items"]] == ["shop:2"]


async def test_checkout_confirm_and_order_events(shop: Shop) -> None:
    await shop.put("u4", "shop:S-1", 2)
    await shop.put("u4", "shop:S-2", 1)
    checkout = await shop.checkout("u4", "key-1")
    assert checkout["status"] == "held" and checkout["total"] == "120" and checkout["expires_at"]
    assert [(x["sku"], x["quantity"]) for x in checkout["lines"]] == [("shop:S-1", 2), ("shop:S-2", 1)]
    assert (await shop.available("shop:S-1"), await shop.available("shop:S-2")) == (8, 2)
    again = await shop.checkout("u4", "key-1", status=200)
    assert again["checkout_id"] == checkout["checkout_id"]
    path = f"/v1/checkouts/{checkout['checkout_id']}/confirm"
    orders = await asyncio.gather(
        *(shop.call("POST", path, 200, json={"payment_reference": "pay-1"}) for _ in range(5))
    )
    assert len({o["order_id"] for o in orders}) == 1
    order = orders[0]
    assert (order["total"], order["payment_reference"], len(order["lines"])) == ("120", "pay-1", 2)
    assert (await shop.available("shop:S-1"), await shop.available("shop:S-2")) == (8, 2)
    assert (await shop.call("GET", "/v1/carts/u4", 200))["items"] == []
    await shop.call("DELETE", f"/v1/checkouts/{checkout['checkout_id']}", 409)


async def test_price_change_needs_consent(shop: Shop) -> None:
    await shop.put("u5", "shop:S-1", 1)
    await shop.publish([product(1, "11", 10, revision=3)])
    refused = await shop.checkout("u5", "key-p", status=409)
    assert [line["sku"] for line in refused["extra"]["lines"]] == ["shop:S-1"]
    assert await shop.available("shop:S-1") == 10
    accepted = await shop.checkout("u5", "key-p2", accept_price_changes=True)
    assert accepted["total"] == "11"


async def test_short_line_holds_nothing_and_release_gives_back(shop: Shop) -> None:
    await shop.put("u6", "shop:S-1", 1)
    await shop.put("u6", "shop:S-3", 2)  # only 1 in stock
    short = await shop.checkout("u6", "key-s", status=409)
    assert short["extra"]["sku"] == "shop:S-3"
    again = await shop.checkout("u6", "key-s", status=409)  # the same request again: refused again
    assert again["extra"]["status"] == "failed"
    assert (await shop.available("shop:S-1"), await shop.available("shop:S-3")) == (10, 1)
    await shop.put("u6", "shop:S-3", 1)
    checkout = await shop.checkout("u6", "key-s2")
    assert (await shop.available("shop:S-1"), await shop.available("shop:S-3")) == (9, 0)
    await shop.call("DELETE", f"/v1/checkouts/{checkout['checkout_id']}", 204)
    await shop.call("DELETE", f"/v1/checkouts/{checkout['checkout_id']}", 204)
    assert (await shop.available("shop:S-1"), await shop.available("shop:S-3")) == (10, 1)
    await shop.call("POST", f"/v1/checkouts/{checkout['checkout_id']}/confirm", 409, json={})


async def test_concurrent_checkouts_of_one_cart_make_one(shop: Shop) -> None:
    await shop.put("u7", "shop:S-1", 1)
    await shop.put("u7", "shop:S-2", 1)
    answers = await asyncio.gather(
        *(
            shop.client.post(
                "/v1/checkouts",
                json={"customer_id": "u7"},
                headers={**shop.headers, "Idempotency-Key": f"k{i}"},
            )
            for i in range(8)
        )
    )
    assert {a.status_code for a in answers} <= {200, 201}
    assert sorted(a.status_code for a in answers).count(201) == 1
    assert len({a.json()["checkout_id"] for a in answers}) == 1
    assert (await shop.available("shop:S-1"), await shop.available("shop:S-2")) == (9, 2)


async def orders_of(shop: Shop, customer: str, count: int, **params: Any) -> Any:
    for _ in range(500):
        page = await shop.call("GET", f"/v1/customers/{customer}/orders", 200, params=params)
        if len(page["orders"]) >= count:
            return page
        await asyncio.sleep(0.01)
    raise AssertionError("orders not projected")


async def test_order_history_newest_first_with_cursor(shop: Shop) -> None:
    placed = []
    for n in range(3):
        await shop.put("u8", "shop:S-1", n + 1)
        checkout = await shop.checkout("u8", f"key-o{n}")
        order = await shop.call("POST", f"/v1/checkouts/{checkout['checkout_id']}/confirm", 200, json={})
        placed.append(order["order_id"])
    await orders_of(shop, "u8", 3)  # all projected
    first = await shop.call("GET", "/v1/customers/u8/orders", 200, params={"limit": 2})
    assert [o["order_id"] for o in first["orders"]] == placed[::-1][:2] and first["next_cursor"]
    second = await shop.call(
        "GET", "/v1/customers/u8/orders", 200, params={"limit": 2, "cursor": first["next_cursor"]}
    )
    assert [o["order_id"] for o in second["orders"]] == placed[:1] and second["next_cursor"] is None
    one = await shop.call("GET", f"/v1/orders/{placed[0]}", 200)
    assert (one["customer_id"], one["total"], one["lines"][0]["quantity"]) == ("u8", "10.5", 1)
    await shop.call("GET", "/v1/orders/o-nope", 404)
    await shop.call("GET", "/v1/customers/u8/orders", 400, params={"cursor": "!!"})
    assert (await shop.client.get("/v1/orders/o-nope")).status_code == 401
    kinds = await activity_of(shop, "u8", want={"activity.added_to_cart", "activity.purchased"})
    assert kinds["activity.purchased"] == 3 and kinds["activity.added_to_cart"] == 3


async def activity_of(shop: Shop, user: str, *, want: set[str]) -> dict[str, int]:
    """Activity events of one user, by type, once every type in ``want`` showed up."""
    consumer = shop.event_log.consumer([ACTIVITY_TOPIC], f"e2e-commerce-{user}")
    await consumer.start()
    kinds: dict[str, int] = {}
    try:
        for _ in range(100):
            for record in await consumer.poll(500, 0.1):
                event = decode_event(record.value)
                if getattr(event.payload, "user_id", None) == user:
                    kinds[event.type] = kinds.get(event.type, 0) + 1
            if want <= set(kinds):
                await asyncio.sleep(0.1)
                for record in await consumer.poll(500, 0.1):
                    event = decode_event(record.value)
                    if getattr(event.payload, "user_id", None) == user:
                        kinds[event.type] = kinds.get(event.type, 0) + 1
                return kinds
    finally:
        await consumer.stop()
    raise AssertionError(f"activity events missing: {want - set(kinds)} (got {kinds})")


async def test_checkouts_count_against_the_customer_units_cap(
    tmp_path: Path,
    embedded_settings: Callable[..., Settings],
    running_app: Callable[..., AbstractAsyncContextManager[Any]],
) -> None:
    settings = embedded_settings(
        tmp_path / "data", admin_token=TOKEN, rate_limit_storefront=UNLIMITED, customer_hold_units=3
    )
    async with running_app(settings, own_event_log=True) as app:
        created = await app.client.post("/v1/storefronts", json={"storefront_id": "web"}, headers=ADMIN)
        shop = Shop(app.client, app.event_log, created.json()["api_key"])
        await shop.publish([product(1, "1", 10)])
        await shop.put("greedy", "shop:S-1", 4)
        refused = await shop.checkout("greedy", "k-greedy", status=429)
        assert refused["status_code"] == 429
        assert await shop.available("shop:S-1") == 10
        await shop.put("greedy", "shop:S-1", 3)
        await shop.checkout("greedy", "k-greedy-2")
