"""`emporium rebuild search` under load: searches running during the rebuild all succeed with full results,
events published during the rebuild are in the new index, and the alias ends on a fresh index.
Runs against both engines (Tantivy embedded, Elasticsearch cluster)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from emporium.adapters import SEARCH_INDEX
from kernel.contracts.events import Envelope, Product, ProductUpserted, StockLevelChanged, new_event
from kernel.eventlog.processing import publish_events
from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask
from kernel.eventlog.sqlite import SqliteEventLog
from kernel.runtime import Runtime
from kernel.settings import load_settings
from search.delivery_zones import DeliveryZones
from search.out_of_stock import MemoryOutOfStockSet
from search.port import RebuildableSearchIndex
from search.projection import SearchProjection
from search.projectors import LIVE_SEARCH_GROUP
from search.rebuild import rebuild_search
from search.schemas import SearchRequest
from search.service import SearchService

PRODUCTS = 600
OUT_OF_STOCK = set(range(0, PRODUCTS, 10))


def upsert(n: int) -> Envelope:
    product = Product(
        product_id=f"rb:{n}",
        supplier_id="rb",
        sku=f"rb:RB-{n}",  # supplier-scoped, as ingest publishes it
        title=f"{'Green Tea' if n % 2 else 'Basmati Rice'} {n}",
        brand="Tetley" if n % 2 else "Daawat",
        category_path=("Grocery",),
        price=Decimal(10 + n),
        stock={"wh-north": 1},
    )
    return new_event(ProductUpserted(product=product), key=product.product_id, revision=1, producer="t")


def stock_level(n: int, in_stock: bool) -> Envelope:
    """What inventory publishes once it took in the product's stock (without it the item is out of stock)."""
    units = int(in_stock)
    payload = StockLevelChanged(
        sku=f"rb:RB-{n}", on_hand=units, held=0, sold=0, available=units, in_stock=in_stock
    )
    return new_event(payload, key=f"rb:RB-{n}", revision=1, producer="t")


@pytest.fixture(params=["tantivy", pytest.param("elasticsearch", marks=pytest.mark.cluster)])
async def setup(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Runtime, RebuildableSearchIndex, MemoryOutOfStockSet, ProjectorTask]]:
    if request.param == "tantivy":
        url = f"tantivy://{tmp_path / 'search'}"
    else:
        url = f"{request.getfixturevalue('elasticsearch_url')}?index=rebuild-it-{uuid.uuid4().hex[:10]}"
    settings = load_settings(env={}, data_dir=str(tmp_path / "data"), search_url=url)
    event_log = SqliteEventLog.from_url(settings.event_log_url)
    runtime = Runtime(settings=settings, event_log=event_log)
    index = SEARCH_INDEX.open(url)
    oos = MemoryOutOfStockSet()
    live = ProjectorTask(
        event_log,
        SearchProjection(index=index, stock=oos),
        group=LIVE_SEARCH_GROUP,
        metrics=ProjectorMetrics.of(runtime.metrics),
        poll_timeout=0.05,
    )
    await event_log.start()
    await index.ensure_index()
    live.start()
    try:
        await publish_events(event_log, [upsert(n) for n in range(PRODUCTS)])
        await publish_events(event_log, [stock_level(n, n not in OUT_OF_STOCK) for n in range(PRODUCTS)])
        await live.wait_caught_up(timeout_s=60)
        await index.refresh()
        yield runtime, index, oos, live
    finally:
        await live.stop()
        await index.close()
        await event_log.close()


async def test_searches_during_rebuild_all_succeed_with_full_results(setup) -> None:
    runtime, index, oos, live = setup
    service = SearchService(index=index, stock=oos, zones=DeliveryZones.from_file())
    expected_tea = sum(1 for n in range(PRODUCTS) if n % 2 and n not in OUT_OF_STOCK)
    assert (await service.search(SearchRequest(q="green tea", size=100))).total == expected_tea

    done = asyncio.Event()
    results: list[tuple[int, int]] = []
    failures: list[BaseException] = []

    async def shopper() -> None:
        while not done.is_set():
            try:
                page = await service.search(SearchRequest(q="green tea", size=100))
                results.append((page.total, len(page.hits)))
                assert all(h.in_stock for h in page.hits)
            except BaseException as exc:
                failures.append(exc)
            await asyncio.sleep(0.02)  # steady load, without starving the 2-core test machine

    shoppers = [asyncio.create_task(shopper()) for _ in range(3)]
    late = [upsert(n) for n in range(PRODUCTS, PRODUCTS + 20)]  # published while the rebuild runs

    async def publish_late() -> None:
        for event in late:
            product = event.payload.product
            n = int(product.product_id.split(":")[1])
            await publish_events(runtime.event_log, [event, stock_level(n, True)])
            await asyncio.sleep(0.01)

    try:
        report, _ = await asyncio.gather(
            rebuild_search(runtime, index=index, stock=oos, progress=False, batch_size=200), publish_late()
        )
    finally:
        done.set()
        await asyncio.gather(*shoppers)

    assert not failures, failures[:3]
    assert len(results) > 10
    # Every search during the rebuild saw the complete, filtered result: full pages, right totals
    # (the late products are all "Basmati Rice" for even n or "Green Tea" for odd n: allow them to appear).
    late_tea = sum(1 for n in range(PRODUCTS, PRODUCTS + 20) if n % 2)
    assert all(expected_tea <= total <= expected_tea + late_tea for total, _ in results)
    assert all(hits == 100 for _, hits in results)
    assert report.events >= 2 * PRODUCTS

    await live.wait_caught_up(timeout_s=30)
    await index.refresh()
    assert await index.count() == PRODUCTS + 20
    assert len(await index.get([e.payload.product.product_id for e in late])) == 20
    page = await service.search(SearchRequest(q="green tea", size=100))
    assert page.total == expected_tea + late_tea
    # out-of-stock flags were rebuilt from the inventory topic
    docs = await index.get([f"rb:{n}" for n in sorted(OUT_OF_STOCK)])
    assert docs and not any(d.in_stock for d in docs)
