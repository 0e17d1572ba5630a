"""SearchService logic: exact out-of-stock filtering with full pages, cursors, validation, delivery ETAs."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import msgspec
import pytest
from fakes import MemorySearchIndex, doc, in_stock
from prometheus_client import CollectorRegistry

from kernel.contracts.events import ACTIVITY_TOPIC, SearchPerformed, ZoneWarehouse, decode_event
from kernel.eventlog.port import OutgoingMessage
from search.activity import ActivityPublisher
from search.cursor import encode_cursor
from search.delivery_zones import DeliveryZones
from search.metrics import SearchMetrics
from search.out_of_stock import MemoryOutOfStockSet, StockChange
from search.port import IndexChange, Sort
from search.schemas import InvalidRequest, SearchRequest
from search.service import SearchService

ZONES = DeliveryZones(
    {
        "BLR": [ZoneWarehouse(warehouse_id="WH-SOUTH", eta_hours=24)],
        "DEL": [
            ZoneWarehouse(warehouse_id="WH-NORTH", eta_hours=12),
            ZoneWarehouse(warehouse_id="WH-SOUTH", eta_hours=72),
        ],
    }
)


@pytest.fixture
async def setup() -> tuple[SearchService, MemorySearchIndex, MemoryOutOfStockSet]:
    index, oos = MemorySearchIndex(), MemoryOutOfStockSet()
    documents = [doc(n) for n in range(100)]
    await index.upsert(documents)
    await in_stock(oos, documents)
    return SearchService(index=index, stock=oos, zones=ZONES), index, oos


async def walk(service: SearchService, request: SearchRequest) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        page = await service.search(msgspec.structs.replace(request, cursor=cursor))
        seen += [h.product_id for h in page.hits]
        if page.next_cursor is None:
            return seen
        assert len(page.hits) == request.size  # every page but the last is full
        cursor = page.next_cursor
    raise AssertionError("cursor never ended")


async def test_out_of_stock_dropped_at_once_and_pages_stay_full(setup) -> None:
    service, _, oos = setup
    gone = {f"SKU-{n:04d}" for n in range(0, 100, 3)}  # a third out of stock, index flags still stale
    await oos.apply([StockChange(sku, False, 1) for sku in gone])
    request = SearchRequest(q="tea", sort=Sort.PRICE_ASC, size=7)
    first = await service.search(request)
    assert len(first.hits) == 7
    assert all(h.in_stock and h.sku not in gone for h in first.hits)
    seen = await walk(service, request)
    expected = [f"s1:{n:04d}" for n in range(100) if f"SKU-{n:04d}" not in gone]
    assert seen == expected  # no repeats, no skips, in order


async def test_restock_visible_next_search(setup) -> None:
    service, _, oos = setup
    await oos.apply([StockChange("SKU-0000", False, 1)])
    page = await service.search(SearchRequest(sort=Sort.PRICE_ASC, size=1))
    assert page.hits[0].sku == "SKU-0001"
    await oos.apply([StockChange("SKU-0000", True, 2)])
    page = await service.search(SearchRequest(sort=Sort.PRICE_ASC, size=1))
    assert page.hits[0].sku == "SKU-0000"


async def test_in_stock_false_keeps_items_and_reports_flag(setup) -> None:
    service, _, oos = setup
    await oos.apply([StockChange("SKU-0000", False, 1)])
    page = await service.search(SearchRequest(sort=Sort.PRICE_ASC, size=2, in_stock=False))
    assert [(h.sku, h.in_stock) for h in page.hits] == [("SKU-0000", False), ("SKU-0001", True)]


async def test_mostly_out_of_stock_still_fills_pages(setup) -> None:
    service, _, oos = setup
    await oos.apply([StockChange(f"SKU-{n:04d}", False, 1) for n in range(100) if n % 10])
    seen = await walk(service, SearchRequest(sort=Sort.PRICE_ASC, size=3))
    assert seen == [f"s1:{n:04d}" for n in range(0, 100, 10)]


async def test_offset_pages_and_facets(setup) -> None:
    service, _, _ = setup
    page2 = await service.search(SearchRequest(sort=Sort.PRICE_ASC, size=10, page=2))
    assert [h.product_id for h in page2.hits] == [f"s1:{n:04d}" for n in range(10, 20)]
    assert page2.total == 100
    assert page2.facets == {}  # facets come with the first page only
    page1 = await service.search(SearchRequest(sort=Sort.PRICE_ASC, size=10))
    assert {b.value: b.count for b in page1.facets["brand"]} == {"Tetley": 50, "Lipton": 50}
    by_cursor = await service.search(SearchRequest(sort=Sort.PRICE_ASC, size=10, cursor=page1.next_cursor))
    assert by_cursor.facets == {} and by_cursor.hits[0].product_id == "s1:0010"


async def test_deliver_to_filters_and_gives_eta(setup) -> None:
    service, _, _ = setup
    page = await service.search(SearchRequest(deliver_to="blr", size=100))
    assert page.hits and all(h.eta_hours == 24 for h in page.hits)
    assert page.total == 34  # n % 3 == 0 -> WH-SOUTH
    page = await service.search(SearchRequest(deliver_to="DEL", size=100))
    assert page.total == 100
    assert {h.eta_hours for h in page.hits} == {12, 72}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"q": "x" * 201}, "longer than"),
        ({"size": 0}, "size"),
        ({"size": 101}, "size"),
        ({"page": 0}, "page"),
        ({"page": 1000, "size": 100}, "next_cursor"),
        ({"price_min": Decimal(-1)}, "price_min"),
        ({"price_max": Decimal("NaN")}, "price_max"),
        ({"price_min": Decimal(10), "price_max": Decimal(5)}, "greater than"),
        ({"rating_min": 5.5}, "rating_min"),
        ({"category": "Fashion>>Men"}, "category"),
        ({"deliver_to": "MARS"}, "unknown delivery zone"),
        ({"cursor": "not-a-cursor!"}, "cursor"),
        ({"cursor": encode_cursor("other-query", [1.0, "x"])}, "different query"),
    ],
)
async def test_invalid_requests(setup, changes: dict[str, object], message: str) -> None:
    service, _, _ = setup
    with pytest.raises(InvalidRequest, match=message):
        await service.search(SearchRequest(**changes))  # type: ignore[arg-type]


async def test_unknown_zone_error_lists_zones(setup) -> None:
    service, _, _ = setup
    with pytest.raises(InvalidRequest) as caught:
        service.plan(SearchRequest(deliver_to="XX"))
    assert caught.value.extra == {"zones": ["BLR", "DEL"]}


async def test_product_reports_exact_availability(setup) -> None:
    service, _, oos = setup
    await oos.apply([StockChange("SKU-0004", False, 1)])
    found = await service.product("s1:0004", deliver_to="DEL")
    assert found is not None and not found.in_stock and found.eta_hours == 12
    assert await service.product("nope") is None


class RecordingLog:
    def __init__(self, delay: float = 0.0) -> None:
        self.published: list[tuple[str, list[OutgoingMessage]]] = []
        self.delay = delay

    async def publish(self, topic: str, messages: list[OutgoingMessage]) -> None:
        await asyncio.sleep(self.delay)
        self.published.append((topic, list(messages)))


async def test_search_emits_activity_in_background_batches(setup) -> None:
    _, index, oos = setup
    event_log = RecordingLog()
    metrics = SearchMetrics(CollectorRegistry())
    activity = ActivityPublisher(event_log, metrics=metrics)  # type: ignore[arg-type]
    service = SearchService(index=index, stock=oos, zones=ZONES, activity=activity)
    await activity.start()
    for _ in range(5):
        await service.search(SearchRequest(q="tea", brand=("Tetley",), user_id="u1"))
    assert event_log.published == []  # nothing awaited on the request path
    await asyncio.sleep(0.05)
    await activity.stop()
    messages = [m for topic, batch in event_log.published for m in batch if topic == ACTIVITY_TOPIC]
    assert len(messages) == 5 and len(event_log.published) == 1  # one batch
    event = decode_event(messages[0].value)
    assert isinstance(event.payload, SearchPerformed)
    assert event.payload.query == "tea" and event.payload.filters["brand"] == "Tetley"
    assert event.payload.user_id == "u1" and event.payload.total == 50


async def test_full_activity_queue_drops_with_metric() -> None:
    registry = CollectorRegistry()
    activity = ActivityPublisher(RecordingLog(), metrics=SearchMetrics(registry), max_queue=2)  # type: ignore[arg-type]
    for _ in range(5):
        activity.emit(SearchPerformed(query="x"), key="k")
    assert registry.get_sample_value("emporium_activity_events_dropped_total", {"reason": "queue_full"}) == 3


async def test_result_cache_reuses_index_answers_but_never_the_stock_filter(setup) -> None:
    from search.cache import ResultCache

    _, index, oos = setup
    cache = ResultCache(max_entries=8, ttl_s=60)
    service = SearchService(index=index, stock=oos, zones=ZONES, cache=cache)
    first = await service.search(SearchRequest(q="tea", sort=Sort.PRICE_ASC, size=3))
    searches = index.searches
    await oos.apply([StockChange(first.hits[0].sku, False, 1)])
    second = await service.search(SearchRequest(q="tea", sort=Sort.PRICE_ASC, size=3))
    assert index.searches == searches  # served from the cache...
    assert first.hits[0].sku not in [h.sku for h in second.hits]  # ...and still filtered exactly
    assert len(second.hits) == 3
    await in_stock(oos, [doc(500)])
    await index.upsert([doc(500, price=Decimal(0))])
    cache.index_changed(IndexChange.CONTENT)  # what the in-process projector reports after a write
    third = await service.search(SearchRequest(q="tea", sort=Sort.PRICE_ASC, size=3))
    assert third.hits[0].product_id == "s1:0500" and index.searches > searches


def test_result_cache_bounds_entries_and_expires() -> None:
    from search.cache import ResultCache
    from search.port import SearchResult

    cache = ResultCache(max_entries=2, ttl_s=0.0)
    result = SearchResult(hits=[], total=0)
    cache.put(b"a", cache.stamp(), result)
    assert cache.get(b"a") is None  # expired at once with ttl 0
    cache = ResultCache(max_entries=2, ttl_s=60, max_answers=2)
    for key in (b"a", b"b", b"c"):
        cache.put(key, cache.stamp(), result)
    assert cache.get(b"a") is None and cache.get(b"c") is result
    assert ResultCache(max_entries=16384).max_answers == 1024  # memory goes mostly to pages
    stale = cache.stamp()
    cache.invalidate()
    cache.put(b"d", stale, result)  # computed before the index changed: not stored
    assert cache.get(b"d") is None


class _Correcting(MemorySearchIndex):
    """A fake index that knows one correction, as the real adapters' vocabularies do."""

    async def correct(self, text: str) -> str | None:
        return "garlic oil" if text.strip().lower() == "garlik oyl" else None


async def test_did_you_mean_carries_the_corrected_query_and_its_hits() -> None:
    index, oos = _Correcting(), MemoryOutOfStockSet()
    documents = [msgspec.structs.replace(doc(n), title=f"Garlic Oil {n}") for n in range(3)]
    await index.upsert(documents)
    await in_stock(oos, documents)
    service = SearchService(index=index, stock=oos, zones=ZONES)
    typo = await service.search(SearchRequest(q="garlik oyl"))
    assert typo.hits == [] and typo.total == 0
    assert typo.corrected_query == "garlic oil" and typo.corrected_total == 3
    assert {h.product_id for h in typo.corrected_hits} == {d.product_id for d in documents}
    clean = await service.search(SearchRequest(q="garlic oil"))
    assert clean.corrected_query is None and clean.corrected_hits == [] and clean.total == 3
