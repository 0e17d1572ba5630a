"""The page cache behind ``GET /v1/search``: reused only while the live stock set agrees."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import msgspec
from fakes import MemorySearchIndex, doc, in_stock
from prometheus_client import CollectorRegistry

from kernel.contracts.events import SearchPerformed
from kernel.http.errors import exception_handlers
from search.api import SEARCH_ERRORS
from search.cache import ResultCache
from search.delivery_zones import DeliveryZones
from search.metrics import SearchMetrics
from search.out_of_stock import MemoryOutOfStockSet, StockChange
from search.port import IndexChange, Sort
from search.schemas import SearchRequest, SearchResponse
from search.service import SearchService

ZONES = DeliveryZones.from_file()


async def make() -> tuple[SearchService, MemorySearchIndex, MemoryOutOfStockSet, CollectorRegistry]:
    index, oos, registry = MemorySearchIndex(), MemoryOutOfStockSet(), CollectorRegistry()
    documents = [doc(n) for n in range(30)]
    await index.upsert(documents)
    await in_stock(oos, documents)
    service = SearchService(
        index=index,
        stock=oos,
        zones=ZONES,
        cache=ResultCache(max_entries=8, ttl_s=60),
        metrics=SearchMetrics(registry),
    )
    return service, index, oos, registry


async def render(service: SearchService, request: SearchRequest) -> bytes:
    """The JSON body ``GET /v1/search`` answers for ``request``."""
    return msgspec.json.encode(await service.search(request))


def page_hits(registry: CollectorRegistry, result: str) -> float:
    return registry.get_sample_value("emporium_search_cache_total", {"result": result}) or 0.0


async def test_rendered_page_is_reused_and_identical_to_an_uncached_render() -> None:
    service, index, _, registry = await make()
    request = SearchRequest(q="tea", sort=Sort.PRICE_ASC, size=5)
    first = await render(service, request)
    searches = index.searches
    second = await render(service, request)
    assert second == first and index.searches == searches
    assert page_hits(registry, "page_hit") == 1
    uncached = SearchService(index=index, stock=service.stock, zones=ZONES)
    assert msgspec.json.encode(await uncached.search(request)) == first


async def test_stock_out_and_restock_are_visible_through_the_page_cache() -> None:
    service, _, oos, registry = await make()
    request = SearchRequest(q="tea", sort=Sort.PRICE_ASC, size=5)
    first = msgspec.json.decode(await render(service, request), type=SearchResponse)
    gone = first.hits[0].sku
    await oos.apply([StockChange(gone, False, 1)])
    second = msgspec.json.decode(await render(service, request), type=SearchResponse)
    assert gone not in [h.sku for h in second.hits] and len(second.hits) == 5
    assert page_hits(registry, "page_stale") == 1
    await oos.apply([StockChange(gone, True, 2)])  # the index was never told: only the stock set knows
    third = msgspec.json.decode(await render(service, request), type=SearchResponse)
    assert third.hits[0].sku == gone
    shown = msgspec.json.decode(
        await render(service, SearchRequest(q="tea", sort=Sort.PRICE_ASC, size=5, in_stock=False)),
        type=SearchResponse,
    )
    await oos.apply([StockChange(gone, False, 3)])
    flagged = msgspec.json.decode(
        await render(service, SearchRequest(q="tea", sort=Sort.PRICE_ASC, size=5, in_stock=False)),
        type=SearchResponse,
    )
    assert shown.hits[0].in_stock and not flagged.hits[0].in_stock  # in_stock=false pages flag it


async def test_index_write_invalidates_rendered_pages() -> None:
    service, index, oos, _ = await make()
    request = SearchRequest(q="tea", sort=Sort.PRICE_ASC, size=5)
    await render(service, request)
    await in_stock(oos, [doc(500)])
    await index.upsert([doc(500, price=Decimal(0))])
    assert service.cache is not None
    service.cache.index_changed(IndexChange.CONTENT)  # what the in-process projector reports
    page = msgspec.json.decode(await render(service, request), type=SearchResponse)
    assert page.hits[0].product_id == "s1:0500"


async def test_stock_outs_keep_the_cache_for_a_grace_period_only() -> None:
    """A stock-out write leaves cached pages for up to the grace (they hide the item already); new
    content, such as a restock, empties the cache at once."""
    service, index, oos, registry = await make()
    cache = service.cache
    assert cache is not None
    cache.stock_out_grace_s = 60.0
    cheap = SearchRequest(q="tea", sort=Sort.PRICE_ASC, size=5)
    dear = SearchRequest(q="tea", sort=Sort.PRICE_DESC, size=5)
    first = msgspec.json.decode(await render(service, cheap), type=SearchResponse)
    await render(service, dear)
    searches = index.searches
    gone = first.hits[0]
    await oos.apply([StockChange(gone.sku, False, 1)])
    await index.set_stock_flags([(gone.product_id, False)])
    cache.index_changed(IndexChange.STOCK_OUTS)
    again = msgspec.json.decode(await render(service, cheap), type=SearchResponse)
    assert gone.sku not in [h.sku for h in again.hits] and len(again.hits) == 5  # re-rendered, exact
    await render(service, dear)  # never showed the item: reused as it is
    assert index.searches == searches and page_hits(registry, "page_hit") == 1

    cache.stock_out_grace_s = 0.0
    cache.index_changed(IndexChange.STOCK_OUTS)  # the grace is over: what was computed before it goes
    await render(service, dear)
    assert index.searches > searches
    searches = index.searches
    await render(service, dear)  # computed after that stock-out: stays
    assert index.searches == searches
    await oos.apply([StockChange(gone.sku, True, 2)])
    await index.set_stock_flags([(gone.product_id, True)])
    cache.index_changed(IndexChange.CONTENT)  # a restock
    back = msgspec.json.decode(await render(service, cheap), type=SearchResponse)
    assert back.hits[0].sku == gone.sku and index.searches > searches


async def test_a_repeated_url_is_answered_from_the_cache_and_still_exact() -> None:
    from litestar import Litestar
    from litestar.testing import AsyncTestClient

    from search.api import storefront_router

    service, index, oos, registry = await make()
    activity = RecordingActivity()
    service.activity = activity  # type: ignore[assignment]
    app = Litestar(
        route_handlers=[storefront_router(service)], exception_handlers=exception_handlers(SEARCH_ERRORS)
    )
    url = "/v1/search?q=tea&sort=price_asc&size=5"
    async with AsyncTestClient(app) as client:
        first = await client.get(url)
        searches = index.searches
        again = await client.get(url, headers={"X-User-Id": "u7"})
        assert again.status_code == 200 and again.content == first.content
        assert again.headers["content-type"] == "application/json"
        assert index.searches == searches and page_hits(registry, "page_hit") == 1
        assert activity.emitted[-1][0].user_id == "u7" and activity.emitted[-1][1] == "u7"
        assert activity.emitted[-1][0].query == "tea" and activity.emitted[-1][0].total == 30

        gone = first.json()["hits"][0]["sku"]
        await oos.apply([StockChange(gone, False, 1)])
        after = (await client.get(url)).json()  # the reused URL re-checks the live stock set
        assert gone not in [h["sku"] for h in after["hits"]] and len(after["hits"]) == 5

        too_long = await client.get(url, headers={"X-User-Id": "u" * 201})
        assert too_long.status_code == 400  # a repeat still gets the full path's validation


class RecordingActivity:
    def __init__(self) -> None:
        self.emitted: list[tuple[SearchPerformed, str]] = []

    def emit(self, payload: SearchPerformed, *, key: str) -> None:
        self.emitted.append((payload, key))


async def test_a_read_model_outage_on_a_repeated_url_is_a_503() -> None:
    from litestar import Litestar
    from litestar.testing import AsyncTestClient
    from redis.exceptions import ConnectionError as RedisConnectionError

    from search.api import storefront_router

    service, _, oos, _ = await make()
    app = Litestar(
        route_handlers=[storefront_router(service)], exception_handlers=exception_handlers(SEARCH_ERRORS)
    )
    async with AsyncTestClient(app) as client:
        assert (await client.get("/v1/search?q=tea")).status_code == 200

        async def down(_: object) -> set[str]:
            raise RedisConnectionError("stock set down")

        oos.out_of_stock = down  # type: ignore[method-assign]
        again = await client.get("/v1/search?q=tea")
        assert again.status_code == 503 and again.headers["retry-after"] == "1", again.text


class _SlowIndex(MemorySearchIndex):
    """Searches that take a while, so that requests pile up on one miss."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail

    async def search(self, query):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.02)
        if self.fail:
            raise ConnectionError("index down")
        return await super().search(query)


async def test_concurrent_misses_of_one_query_share_one_index_search() -> None:
    index, oos = _SlowIndex(), MemoryOutOfStockSet()
    documents = [doc(n) for n in range(30)]
    await index.upsert(documents)
    await in_stock(oos, documents)
    service = SearchService(index=index, stock=oos, zones=ZONES, cache=ResultCache(ttl_s=60))
    request = SearchRequest(q="tea", sort=Sort.PRICE_ASC, size=5)
    pages = await asyncio.gather(*(render(service, request) for _ in range(50)))
    assert index.searches == 1 and len(set(pages)) == 1
    other = SearchRequest(q="tea", sort=Sort.PRICE_DESC, size=5)
    await asyncio.gather(render(service, request), render(service, other))
    assert index.searches == 2  # the first was cached; another query is its own search


async def test_a_shared_failed_search_fails_every_waiter_and_the_next_request_retries() -> None:
    index, oos = _SlowIndex(fail=True), MemoryOutOfStockSet()
    await index.upsert([doc(1)])
    await in_stock(oos, [doc(1)])
    service = SearchService(index=index, stock=oos, zones=ZONES, cache=ResultCache(ttl_s=60))
    request = SearchRequest(q="tea", size=5)
    outcomes = await asyncio.gather(*(render(service, request) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    index.fail = False
    assert msgspec.json.decode(await render(service, request), type=SearchResponse).total == 1


async def test_a_caller_that_gives_up_does_not_cancel_the_shared_search() -> None:
    index, oos = _SlowIndex(), MemoryOutOfStockSet()
    await index.upsert([doc(1)])
    await in_stock(oos, [doc(1)])
    service = SearchService(index=index, stock=oos, zones=ZONES, cache=ResultCache(ttl_s=60))
    request = SearchRequest(q="tea", size=5)
    quitter = asyncio.ensure_future(render(service, request))
    await asyncio.sleep(0.005)
    stayer = asyncio.ensure_future(render(service, request))
    quitter.cancel()
    assert msgspec.json.decode(await stayer, type=SearchResponse).total == 1
    assert index.searches == 1
