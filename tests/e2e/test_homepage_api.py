"""``GET /v1/homepage`` through the real app (create_app on a temp data dir: the embedded stack with the
in-process homepage cache and out-of-stock set), fed by events published to its log like other processes
would: catalog, stock, trending and recommendation events."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from kernel.contracts.events import (
    Envelope,
    PopularProductsComputed,
    Product,
    ProductUpserted,
    RecommendationsComputed,
    StockLevelChanged,
    TrendingComputed,
    TrendingEntry,
    new_event,
)
from kernel.eventlog.port import EventLog
from kernel.eventlog.processing import publish_events
from kernel.settings import Settings

PRODUCTS = 30


def upsert(n: int) -> Envelope:
    product = Product(
        product_id=f"home:p{n}",
        supplier_id="home",
        sku=f"home:S{n}",
        title=f"Homepage product {n}",
        brand="Acme",
        category_path=("Kitchen" if n % 2 else "Garden", "Tools"),
        price=Decimal("90"),
        list_price=Decimal(str(100 + n)),
        rating=round(3 + (n % 20) / 10, 1),
    )
    return new_event(ProductUpserted(product=product), key=product.product_id, revision=1, producer="t")


def stock(n: int, in_stock: bool, revision: int) -> Envelope:
    level = StockLevelChanged(
        sku=f"home:S{n}",
        on_hand=5,
        held=0,
        sold=0 if in_stock else 5,
        available=5 if in_stock else 0,
        in_stock=in_stock,
    )
    return new_event(level, key=f"home:S{n}", revision=revision, producer="t")


class Shop:
    def __init__(self, client: AsyncTestClient, event_log: EventLog) -> None:
        self.client = client
        self.event_log = event_log

    async def publish(self, events: list[Envelope]) -> None:
        await publish_events(self.event_log, events)

    async def until(self, check: Callable[[dict[str, Any]], bool], **params: str) -> httpx.Response:
        """Poll the homepage until ``check`` holds (projectors and the rebuild run in the background)."""
        for _ in range(400):
            response = await self.client.get("/v1/homepage", params=params)
            if response.status_code == 200 and check(response.json()):
                return response
            await asyncio.sleep(0.025)
        raise AssertionError(f"homepage never satisfied the check: {response.text[:2000]}")


def items(page: dict[str, Any], section: str) -> list[str]:
    for found in page["sections"]:
        if found["id"] == section:
            return [item["product_id"] for item in found["items"]]
    raise KeyError(section)


@pytest.fixture(scope="module")
async def shop(
    tmp_path_factory: pytest.TempPathFactory,
    embedded_settings: Callable[..., Settings],
    running_app: Callable[..., AbstractAsyncContextManager[Any]],
) -> AsyncIterator[Shop]:
    settings = embedded_settings(
        tmp_path_factory.mktemp("home-e2e") / "data", homepage_min_rebuild_s=0.0, rate_limits=False
    )
    async with running_app(settings, own_event_log=True) as app:
        shop = Shop(app.client, app.event_log)
        await shop.publish(
            [upsert(n) for n in range(PRODUCTS)] + [stock(n, True, 1) for n in range(PRODUCTS)]
        )
        await shop.until(lambda page: len(items(page, "new_arrivals")) == 12)
        yield shop


async def test_the_homepage_has_every_section(shop: Shop) -> None:
    response = await shop.client.get("/v1/homepage")
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["platform"] == "web" and page["region"] == "" and page["personalised"] is False
    ids = [section["id"] for section in page["sections"]]
    assert ids == ["trending", "new_arrivals", "deals", "top_rated", "top_rated", "recommended"]
    # deals: the largest discount from the list price first (list price 100 + n, price 90)
    assert items(page, "deals")[:3] == ["home:p29", "home:p28", "home:p27"]
    rated = [s for s in page["sections"] if s["id"] == "top_rated"]
    assert {s["category"] for s in rated} == {"Kitchen", "Garden"}
    assert all(len(s["items"]) <= 6 for s in rated)
    app = (await shop.client.get("/v1/homepage", params={"platform": "app"})).json()
    assert len(items(app, "new_arrivals")) == 8


async def test_sold_out_items_disappear_at_once(shop: Shop) -> None:
    page = (await shop.client.get("/v1/homepage")).json()
    first = items(page, "deals")[0]
    n = int(first.removeprefix("home:p"))
    await shop.publish([stock(n, False, 2)])
    after = await shop.until(lambda p: first not in str(p["sections"]))
    assert len(items(after.json(), "deals")) == 12  # the next best deal fills the gap
    await shop.publish([stock(n, True, 3)])
    await shop.until(lambda p: items(p, "deals")[0] == first)


async def test_etag_and_304(shop: Shop) -> None:
    response = await shop.client.get("/v1/homepage", params={"platform": "app"})
    etag = response.headers["etag"]
    assert etag.startswith('W/"') and response.headers["cache-control"] == "no-cache"
    again = await shop.client.get("/v1/homepage", params={"platform": "app"}, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    weak = await shop.client.get(
        "/v1/homepage",
        params={"platform": "app"},
        headers={"If-None-Match": f'"other", {etag.removeprefix("W/")}'},
    )
    assert weak.status_code == 304
    other = await shop.client.get(
        "/v1/homepage", params={"platform": "app"}, headers={"If-None-Match": '"x"'}
    )
    assert other.status_code == 200


async def test_trending_from_analytics_and_recommendations_for_the_shopper(shop: Shop) -> None:
    trending = TrendingComputed(
        window="hour",
        kind="products",
        window_end=datetime.now(UTC),
        region="IN",
        entries=(
            TrendingEntry(key="home:p3", score=2.0, count=5),
            TrendingEntry(key="home:p7", score=8.0, count=9),
        ),
    )
    recs = RecommendationsComputed(user_id="shopper-9", product_ids=("home:p11", "home:p12"))
    await shop.publish(
        [
            new_event(trending, key="trending:products:hour:IN", revision=1, producer="t"),
            new_event(recs, key="user:shopper-9", revision=1, producer="t"),
        ]
    )
    page = (await shop.until(lambda p: items(p, "trending") == ["home:p7", "home:p3"], region="IN")).json()
    assert page["sections"][0]["source"] == "analytics"
    personal = await shop.client.get(
        "/v1/homepage", params={"region": "IN"}, headers={"X-User-Id": "shopper-9"}
    )
    body = personal.json()
    assert body["personalised"] is True and items(body, "recommended") == ["home:p11", "home:p12"]
    assert (
        personal.headers["etag"]
        != (await shop.client.get("/v1/homepage", params={"region": "IN"})).headers["etag"]
    )


async def test_bad_parameters_are_json_400(shop: Shop) -> None:
    for params, headers in (
        ({"platform": "tv"}, {}),
        ({"region": "no spaces"}, {}),
        ({"region": "x" * 33}, {}),
        ({}, {"X-User-Id": "bad id"}),
    ):
        response = await shop.client.get("/v1/homepage", params=params, headers=headers)
        assert response.status_code == 400, (params, response.text)
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["status_code"] == 400 and response.json()["detail"]


def _count(counter: dict[str, int], name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def counted(*args: Any, **kwargs: Any) -> Any:
        counter[name] = counter.get(name, 0) + 1
        return await method(*args, **kwargs)

    return counted


READS = {
    "search index": ("search", "get", "suggest", "count", "ping"),
    "ingest store": (
        "get_supplier", "supplier_by_key_id", "get_storefront", "storefront_by_key_id", "product_states",
        "live_products", "get_feed",
    ),
    "inventory engine": ("get_stock", "get_reservation", "reserve", "reconcile"),
    "recommendations store": ("get", "ping"),
}  # fmt: skip


async def test_the_request_path_reads_no_index_and_no_database(shop: Shop) -> None:
    """Only the cache and the out-of-stock set: every read of the index and the databases is counted."""
    container = shop.client.app.state.container
    adapters = {name: adapter for name, (_, adapter) in container._adapters.items()}
    counter: dict[str, int] = {}
    originals: list[tuple[Any, str, Any]] = []
    for port, methods in READS.items():
        for method in methods:
            adapter = adapters[port]
            originals.append((adapter, method, adapter.__dict__.get(method)))
            setattr(adapter, method, _count(counter, f"{port}.{method}", getattr(adapter, method)))
    try:
        for n in range(60):
            params = {"platform": ("web", "app")[n % 2], "region": ("", "IN")[n % 3 == 0]}
            headers = {"X-User-Id": "shopper-9"} if n % 4 == 0 else {}
            response = await shop.client.get("/v1/homepage", params=params, headers=headers)
            assert response.status_code == 200
    finally:
        for adapter, method, original in originals:
            if original is None:
                delattr(adapter, method)
            else:
                setattr(adapter, method, original)
    assert counter == {}


async def test_a_stampede_of_1000_requests_on_a_page_never_built_builds_it_once(shop: Shop) -> None:
    """A region nobody asked for yet has no document: 1,000 requests at once wait on one build."""
    registry = shop.client.app.state.runtime.metrics

    def builds() -> float:
        return registry.get_sample_value("emporium_homepage_build_seconds_count") or 0.0

    popular = PopularProductsComputed(product_ids=("home:p1",), region="STAMPEDE")
    await shop.publish([new_event(popular, key="popular:STAMPEDE", revision=1, producer="t")])
    cache = shop.client.app.state.container.homepage_cache()
    for _ in range(400):
        if await cache.region_known("STAMPEDE"):
            break
        await asyncio.sleep(0.025)
    before = builds()
    responses = await asyncio.gather(
        *(shop.client.get("/v1/homepage", params={"region": "STAMPEDE"}) for _ in range(1000))
    )
    assert {response.status_code for response in responses} == {200}
    assert len({response.headers["etag"] for response in responses}) == 1
    assert builds() - before == 1
    assert responses[0].json()["region"] == "STAMPEDE"


async def test_a_made_up_region_gets_every_regions_page(shop: Shop) -> None:
    """Only regions the lists or the activity named get a page of their own: any other costs no build."""
    response = await shop.client.get("/v1/homepage", params={"region": "Atlantis"})
    assert response.status_code == 200 and response.json()["region"] == ""
