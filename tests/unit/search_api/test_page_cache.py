"""The rendered-page cache behind ``GET /v1/search``: reused only while the live stock set agrees."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from memory_search_index import MemorySearchIndex, doc
from prometheus_client import CollectorRegistry

from read_models.logistics import DeliveryZones
from read_models.out_of_stock import MemoryOutOfStockSet, StockChange
from search.port import Sort
from search.service import ResultCache, SearchMetrics, SearchRequest, SearchResponse, SearchService

ZONES = DeliveryZones.from_file()


async def make() -> tuple[SearchService, MemorySearchIndex, MemoryOutOfStockSet, CollectorRegistry]:
    index, oos, registry = MemorySearchIndex(), MemoryOutOfStockSet(), CollectorRegistry()
    await index.upsert([doc(n) for n in range(30)])
    service = SearchService(
        index=index,
        stock=oos,
        zones=ZONES,
        cache=ResultCache(max_entries=8, ttl_s=60),
        metrics=SearchMetrics(registry),
    )
    return service, index, oos, registry


def page_hits(registry: CollectorRegistry, result: str) -> float:
    return registry.get_sample_value("emporium_search_cache_total", {"result": result}) or 0.0


async def test_rendered_page_is_reused_and_identical_to_an_uncached_render() -> None:
    service, index, _, registry = await make()
    request = SearchRequest(q="tea", sort=Sort.PRICE_ASC, size=5)
    first = await service.search_json(request)
    searches = index.searches
    second = await service.search_json(request)
    assert second == first and index.searches == searches
    assert page_hits(registry, "page_hit") == 1
    uncached = SearchService(index=index, stock=service.stock, zones=ZONES)
    assert msgspec.json.encode(await uncached.search(request)) == first


async def test_stock_out_and_restock_are_visible_through_the_page_cache() -> None:
    service, _, oos, registry = await make()
    request = SearchRequest(q="tea", sort=Sort.PRICE_ASC, size=5)
    first = msgspec.json.decode(await service.search_json(request), type=SearchResponse)
    gone = first.hits[0].sku
    await oos.apply([StockChange(gone, False, 1)])
    second = msgspec.json.decode(await service.search_json(request), type=SearchResponse)
    assert gone not in [h.sku for h in second.hits] and len(second.hits) == 5
    assert page_hits(registry, "page_stale") == 1
    await oos.apply([StockChange(gone, True, 2)])  # the index was never told: only the stock set knows
    third = msgspec.json.decode(await service.search_json(request), type=SearchResponse)
    assert third.hits[0].sku == gone
    shown = msgspec.json.decode(
        await service.search_json(SearchRequest(q="tea", sort=Sort.PRICE_ASC, size=5, in_stock=False)),
        type=SearchResponse,
    )
    await oos.apply([StockChange(gone, False, 3)])
    flagged = msgspec.json.decode(
        await service.search_json(SearchRequest(q="tea", sort=Sort.PRICE_ASC, size=5, in_stock=False)),
        type=SearchResponse,
    )
    assert shown.hits[0].in_stock and not flagged.hits[0].in_stock  # in_stock=false pages flag it


async def test_index_write_invalidates_rendered_pages() -> None:
    service, index, _, _ = await make()
    request = SearchRequest(q="tea", sort=Sort.PRICE_ASC, size=5)
    await service.search_json(request)
    await index.upsert([doc(500, price=Decimal(0))])
    assert service.cache is not None
    service.cache.invalidate()  # what the in-process projector does after each index write
    page = msgspec.json.decode(await service.search_json(request), type=SearchResponse)
    assert page.hits[0].product_id == "s1:0500"
