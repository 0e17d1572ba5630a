"""The feed consumer's batches (no I/O): one engine call per batch of catalog events, the newest revision
of each SKU, nothing for events without stock; and the domain's "nothing to change"."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from inventory.domain import StockLevel
from inventory.events import FeedStockConsumer
from inventory.feed_stock import FeedOutcome, FeedStock, decide_feed_change, latest_per_sku
from kernel.contracts.events import Product, ProductRemoved, ProductUpserted, new_event
from kernel.eventlog.port import Record
from kernel.eventlog.processing import ConsumedEvent


class CountingEngine:
    def __init__(self) -> None:
        self.calls: list[list[FeedStock]] = []

    async def adjust_many_from_feed(self, changes: Sequence[FeedStock]) -> FeedOutcome:
        self.calls.append(list(changes))
        return FeedOutcome(len(latest_per_sku(changes)) - 1, {"s:BAD": "refused"})


def consumed(payload: Any, revision: int) -> ConsumedEvent:
    envelope = new_event(payload, key="k", revision=revision, producer="t")
    return ConsumedEvent(Record("catalog", 0, revision, "k", b"", 0), envelope)


def upsert(sku: str, stock: dict[str, Any] | None, revision: int) -> ConsumedEvent:
    product = Product(product_id=sku, supplier_id="s", sku=sku, title=sku, price=Decimal(1), stock=stock)
    return consumed(ProductUpserted(product=product), revision)


async def test_a_batch_of_catalog_events_is_one_engine_call() -> None:
    engine = CountingEngine()
    consumer = FeedStockConsumer(engine, event_log=None)  # type: ignore[arg-type]  # handle() only
    events = [upsert(f"A{i}", {"n": i, "bad": -1}, 1) for i in range(1000)]
    events += [
        upsert("NOSTOCK", None, 1),
        consumed(ProductRemoved(product_id="A1", supplier_id="s", sku="A1"), 2),
    ]
    await consumer.handle(events)
    assert len(engine.calls) == 1 and len(engine.calls[0]) == 1000
    assert engine.calls[0][3] == FeedStock("s:A3", {"n": 3}, 1)  # scoped SKU; a negative quantity dropped
    assert consumer.applied == 999
    await consumer.handle([upsert("NOSTOCK", None, 2)])
    assert len(engine.calls) == 1  # nothing with stock: no call


def test_only_the_newest_revision_of_a_sku_counts() -> None:
    changes = [FeedStock("a", {"n": 1}, 2), FeedStock("b", {"n": 1}, 1), FeedStock("a", {"n": 5}, 1)]
    assert latest_per_sku(changes) == [FeedStock("a", {"n": 1}, 2), FeedStock("b", {"n": 1}, 1)]


def test_a_feed_naming_the_stock_kept_changes_nothing() -> None:
    kept = StockLevel(sku="a", on_hand=5, held=2, warehouses={"n": 3, "s": 2})
    assert decide_feed_change(kept, "a", {"n": 3, "s": 2}) is None
    changed = decide_feed_change(kept, "a", {"n": 4, "s": 2})
    assert changed is not None and (changed.on_hand, changed.held) == (6, 2)
    plain = StockLevel(sku="a", on_hand=5)  # set by PUT without a breakdown: the feed's breakdown is news
    assert decide_feed_change(plain, "a", {"n": 5}) is not None
    assert decide_feed_change(None, "a", {}) is not None  # a new SKU is recorded, even with nothing
