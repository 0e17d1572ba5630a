"""HTTP contract of the storefront routes: bad parameters are JSON 400s, never 500s; shapes are right."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fakes import MemorySearchIndex, doc, in_stock
from litestar import Litestar
from litestar.testing import AsyncTestClient

from kernel.http.errors import exception_handlers
from search.api import SEARCH_ERRORS, storefront_router
from search.delivery_zones import DeliveryZones
from search.out_of_stock import MemoryOutOfStockSet, StockChange
from search.service import SearchService


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient]:
    index, oos = MemorySearchIndex(), MemoryOutOfStockSet()
    documents = [doc(n) for n in range(30)]
    await index.upsert(documents)
    await in_stock(oos, documents)
    await oos.apply([StockChange("SKU-0002", False, 1)])
    service = SearchService(index=index, stock=oos, zones=DeliveryZones.from_file())
    app = Litestar(
        route_handlers=[storefront_router(service)], exception_handlers=exception_handlers(SEARCH_ERRORS)
    )
    async with AsyncTestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "query",
    [
        "sort=cheapest",
        "price_min=-1",
        "price_min=abc",
        "price_min=10&price_max=5",
        "size=101",
        "size=0",
        "size=ten",
        "page=0",
        "q=" + "x" * 201,
        "cursor=%%%",
        "cursor=AAAA",
        "rating_min=6",
        "in_stock=maybe",
        "deliver_to=NOWHERE",
        "category=%3E",
    ],
)
async def test_bad_parameters_are_json_400(client: AsyncTestClient, query: str) -> None:
    response = await client.get(f"/v1/search?{query}")
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["detail"]


async def test_empty_form_fields_mean_absent(client: AsyncTestClient) -> None:
    """A storefront form submits empty fields: they filter nothing and start at the first page."""
    plain = (await client.get("/v1/search?q=")).json()
    empty = (await client.get("/v1/search?q=&cursor=&category=&deliver_to=")).json()
    assert empty["total"] == plain["total"] and empty["hits"] == plain["hits"]


async def test_unknown_zone_lists_zones(client: AsyncTestClient) -> None:
    body = (await client.get("/v1/search?deliver_to=MARS")).json()
    assert "BLR" in body["extra"]["zones"]


async def test_search_shape_and_cursor_round_trip(client: AsyncTestClient) -> None:
    response = await client.get("/v1/search", params={"q": "tea", "sort": "price_asc", "size": 5})
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"hits", "total", "facets", "next_cursor"}
    hit = body["hits"][0]
    assert set(hit) >= {"product_id", "sku", "title", "brand", "category", "price", "currency", "in_stock"}
    assert hit["category"] == "Grocery>Beverages>Tea"
    assert "SKU-0002" not in [h["sku"] for h in body["hits"]]
    second = (
        await client.get(
            "/v1/search", params={"q": "tea", "sort": "price_asc", "size": 5, "cursor": body["next_cursor"]}
        )
    ).json()
    assert not {h["product_id"] for h in second["hits"]} & {h["product_id"] for h in body["hits"]}
    # a cursor is bound to its query
    other = await client.get("/v1/search", params={"q": "blend", "cursor": body["next_cursor"]})
    assert other.status_code == 400


async def test_brand_is_repeatable(client: AsyncTestClient) -> None:
    body = (await client.get("/v1/search?brand=Tetley&brand=Lipton&size=100&in_stock=false")).json()
    assert body["total"] == 30
    body = (await client.get("/v1/search?brand=Tetley&size=100")).json()
    assert {h["brand"] for h in body["hits"]} == {"Tetley"}


async def test_suggest_and_product(client: AsyncTestClient) -> None:
    body = (await client.get("/v1/suggest?q=organic")).json()
    assert 0 < len(body["suggestions"]) <= 10
    assert (await client.get("/v1/suggest?q=organic&limit=11")).status_code == 400
    assert (await client.get("/v1/suggest")).status_code == 400
    product = await client.get("/v1/products/s1:0002")
    assert product.status_code == 200 and product.json()["in_stock"] is False
    missing = await client.get("/v1/products/s1:9999")
    assert missing.status_code == 404 and missing.json()["detail"]
