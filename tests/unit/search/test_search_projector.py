"""Projector logic over the in-memory stock set and a fake index: revisions, ordering, stock flags."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from fakes import MemorySearchIndex

from kernel.contracts.events import (
    Envelope,
    Product,
    ProductRemoved,
    ProductUpserted,
    StockLevelChanged,
    new_event,
)
from search.out_of_stock import MemoryOutOfStockSet
from search.port import IndexChange
from search.projection import SearchProjection


def product(n: int, *, title: str | None = None, sku: str | None = None) -> Product:
    """As ingest publishes it: the SKU is scoped by the supplier (``s1:SKU-<n>``)."""
    return Product(
        product_id=f"s1:{n}",
        supplier_id="s1",
        sku=f"s1:{sku or f'SKU-{n}'}",
        title=title or f"Basmati rice {n}",
        brand="Daawat",
        category_path=("Grocery", "Rice"),
        price=Decimal("99.50"),
        stock={"WH-NORTH": 5, "WH-SOUTH": 0},
    )


def upserted(p: Product, revision: int) -> Envelope:
    return new_event(ProductUpserted(product=p), key=p.product_id, revision=revision, producer="test")


def removed(p: Product, revision: int) -> Envelope:
    payload = ProductRemoved(product_id=p.product_id, supplier_id=p.supplier_id, sku=p.sku)
    return new_event(payload, key=p.product_id, revision=revision, producer="test")


def stock(sku: str, in_stock: bool, revision: int) -> Envelope:
    payload = StockLevelChanged(
        sku=sku,
        on_hand=5 if in_stock else 0,
        held=0,
        sold=0,
        available=5 if in_stock else 0,
        in_stock=in_stock,
    )
    return new_event(payload, key=sku, revision=revision, producer="test")


@pytest.fixture
def parts() -> tuple[SearchProjection, MemorySearchIndex, MemoryOutOfStockSet]:
    index, oos = MemorySearchIndex(), MemoryOutOfStockSet()
    return SearchProjection(index=index, stock=oos), index, oos


async def test_upsert_builds_document_with_revision_and_warehouses(parts) -> None:
    projection, index, _ = parts
    await projection.handle([upserted(product(1), 3), stock("s1:SKU-1", True, 1)])
    doc = index.docs["s1:1"]
    assert doc.revision == 3 and doc.sku == "s1:SKU-1" and doc.in_stock
    assert doc.warehouses == ("WH-NORTH",)  # only warehouses holding stock


async def test_a_product_without_a_stock_event_is_out_of_stock(parts) -> None:
    projection, index, oos = parts
    await projection.handle([upserted(product(1), 1)])
    assert not index.docs["s1:1"].in_stock and await oos.out_of_stock(["s1:SKU-1"]) == {"s1:SKU-1"}
    await projection.handle([stock("s1:SKU-1", True, 1)])  # inventory's first word: in stock
    assert index.docs["s1:1"].in_stock


async def test_catalog_events_from_before_scoped_skus_are_scoped(parts) -> None:
    projection, index, oos = parts
    legacy = msgspec.structs.replace(product(1), sku="SKU-1")  # the supplier's bare code
    await projection.handle([upserted(legacy, 1), stock("s1:SKU-1", True, 1)])
    assert index.docs["s1:1"].sku == "s1:SKU-1" and index.docs["s1:1"].in_stock
    assert await oos.products_for(["s1:SKU-1"]) == {"s1:SKU-1": ["s1:1"]}


async def test_newest_catalog_event_wins_in_and_across_batches(parts) -> None:
    projection, index, _ = parts
    p = product(1)
    await projection.handle([upserted(p, 2), upserted(product(1, title="Newest title"), 3), upserted(p, 1)])
    assert index.docs["s1:1"].title == "Newest title"
    await projection.handle([upserted(p, 2)])  # stale redelivery
    assert index.docs["s1:1"].title == "Newest title"
    await projection.handle([removed(p, 4)])
    assert "s1:1" not in index.docs
    await projection.handle([upserted(p, 3)])  # a stale upsert does not resurrect it
    assert "s1:1" not in index.docs


async def test_stock_out_then_restock_updates_set_and_index_flag(parts) -> None:
    projection, index, oos = parts
    await projection.handle([upserted(product(1), 1)])
    await projection.handle([stock("s1:SKU-1", False, 1)])
    assert await oos.out_of_stock(["s1:SKU-1"]) == {"s1:SKU-1"}
    assert not index.docs["s1:1"].in_stock
    refreshes = index.refreshes
    await projection.handle([stock("s1:SKU-1", True, 2)])
    assert await oos.out_of_stock(["s1:SKU-1"]) == set()
    assert index.docs["s1:1"].in_stock
    assert index.refreshes == refreshes + 1  # a restock is made searchable at once


async def test_out_of_order_and_duplicate_stock_events_keep_newest(parts) -> None:
    projection, index, oos = parts
    await projection.handle([upserted(product(1), 1)])
    await projection.handle([stock("s1:SKU-1", False, 5), stock("s1:SKU-1", True, 4)])  # newest (5) says out
    assert await oos.out_of_stock(["s1:SKU-1"]) == {"s1:SKU-1"}
    await projection.handle([stock("s1:SKU-1", True, 3), stock("s1:SKU-1", False, 5)])  # stale + duplicate
    state = await oos.state("s1:SKU-1")
    assert state is not None and state.revision == 5 and not state.in_stock
    assert not index.docs["s1:1"].in_stock


async def test_stock_event_before_product_sets_flag_at_upsert(parts) -> None:
    projection, index, _ = parts
    await projection.handle([stock("s1:SKU-9", False, 1)])
    await projection.handle([upserted(product(9), 1)])
    assert not index.docs["s1:9"].in_stock


async def test_same_batch_stock_and_upsert(parts) -> None:
    projection, index, _ = parts
    await projection.handle([upserted(product(2), 1), stock("s1:SKU-2", False, 1)])
    assert not index.docs["s1:2"].in_stock


async def test_sku_change_moves_stock_link(parts) -> None:
    projection, index, oos = parts
    await projection.handle([upserted(product(3, sku="OLD"), 1)])
    await projection.handle([upserted(product(3, sku="NEW"), 2)])
    assert await oos.products_for(["s1:OLD", "s1:NEW"]) == {"s1:NEW": ["s1:3"]}
    await projection.handle([stock("s1:NEW", False, 1)])
    assert not index.docs["s1:3"].in_stock


async def test_warmup_projection_without_index_only_fills_stock_set() -> None:
    oos = MemoryOutOfStockSet()
    projection = SearchProjection(index=None, stock=oos)
    await projection.handle([upserted(product(1), 1), stock("s1:SKU-1", False, 1)])
    assert await oos.out_of_stock(["s1:SKU-1"]) == {"s1:SKU-1"}
    assert await oos.products_for(["s1:SKU-1"]) == {"s1:SKU-1": ["s1:1"]}


class _StagingIndex(MemorySearchIndex):
    stages_writes = True  # as Tantivy: writes wait for ``flush``


@pytest.mark.parametrize("index_type", [MemorySearchIndex, _StagingIndex])
async def test_only_writes_that_change_answers_notify(index_type: type[MemorySearchIndex]) -> None:
    """A stock feed updating quantities flips no SKU: the result cache must survive it. A write that only
    flags stock-outs says so (answers can only lose those items); anything else is new content."""
    notified: list[IndexChange] = []
    projection = SearchProjection(
        index=index_type(), stock=MemoryOutOfStockSet(), on_index_write=notified.append
    )

    async def notifications(events: list[Envelope]) -> list[IndexChange]:
        before = len(notified)
        await projection.stage(events)
        await projection.flush()
        return notified[before:]

    content, outs = [IndexChange.CONTENT], [IndexChange.STOCK_OUTS]
    assert await notifications([upserted(product(1), 1), stock("s1:SKU-1", True, 1)]) == content
    assert (
        await notifications([stock("s1:SKU-1", True, 2), stock("s1:SKU-1", True, 3)]) == []
    )  # quantities only
    assert await notifications([stock("s1:SKU-1", False, 4)]) == outs  # a stock-out flips the index flag
    assert await notifications([stock("s1:SKU-1", False, 5)]) == []
    assert await notifications([stock("s1:SKU-1", True, 6)]) == content  # a restock
    assert await notifications([stock("s1:SKU-1", False, 7), upserted(product(2), 1)]) == content
    assert await notifications([removed(product(1), 2)]) == content
