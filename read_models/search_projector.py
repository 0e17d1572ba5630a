"""Search projections: inventory -> out-of-stock set (fast path), catalog + inventory -> search index.

Two projections in two consumer groups, so that a slow index write (an Elasticsearch bulk, a Tantivy
commit) never delays a stock-out: ``StockProjection`` only does the revision CAS on the out-of-stock set,
which is what search filters on; ``SearchProjection`` keeps the index (and its stock flags) current.

``SearchProjection``:

Per batch (the runner commits offsets only after ``handle`` returned):

1. Stock: the newest ``StockLevelChanged`` per SKU goes into the out-of-stock set (revision CAS, so stale
   and repeated events change nothing). This is what search filters on, immediately.
2. Catalog links: product id <-> SKU, so stock events (keyed by SKU) can reach index documents.
3. Index: the newest catalog event per product (upsert or delete, versioned by the event revision; the
   index skips stale revisions), with the stock flag taken from the out-of-stock set, so the order in which
   the catalog and inventory topics arrive does not matter. Then the index's stock flags of the products
   whose stock state changed. A restock makes the index refresh, so the item is back in the very next
   search (a stock-out needs no refresh: the out-of-stock set already hides it).

Delivery zones are projected by ``read_models.projectors.ZoneProjection`` in every serving process.
The index stock flag is near-real-time and lets the index compute totals and facets over in-stock items;
the out-of-stock set is exact and is checked for every result page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from emporium.contracts.events import (
    CATALOG_TOPIC,
    INVENTORY_TOPIC,
    Envelope,
    ProductRemoved,
    ProductUpserted,
    StockLevelChanged,
)
from read_models.out_of_stock import OutOfStockSet, ProductLink, StockChange
from search.documents import document_from_product
from search.port import SearchIndex

log = structlog.get_logger(__name__)


def _epoch_ms(event: Envelope) -> int:
    """``sort=newest`` orders by the time of the product's latest catalog event (the log keeps no
    separate first-seen time, and a rebuild must reproduce the same value)."""
    return int(event.occurred_at.timestamp() * 1000)


class StockProjection:
    """Fast path: ``StockLevelChanged`` -> out-of-stock set, nothing else (group ``read-models.stock``)."""

    name = "stock"

    def __init__(self, *, stock: OutOfStockSet, topics: Sequence[str] = (INVENTORY_TOPIC,)) -> None:
        self.stock = stock
        self.topics = tuple(topics)

    async def handle(self, events: Sequence[Envelope]) -> None:
        newest: dict[str, StockChange] = {}
        for event in events:
            payload = event.payload
            if isinstance(payload, StockLevelChanged):
                seen = newest.get(payload.sku)
                if seen is None or event.revision > seen.revision:
                    newest[payload.sku] = StockChange(payload.sku, payload.in_stock, event.revision)
        if newest:
            await self.stock.apply(list(newest.values()))


class SearchProjection:
    """Idempotent: replaying any prefix of the log again leaves the same read models."""

    name = "search"

    def __init__(
        self,
        *,
        index: SearchIndex | None,
        stock: OutOfStockSet,
        topics: Sequence[str] = (CATALOG_TOPIC, INVENTORY_TOPIC),
        on_index_write: Callable[[], None] | None = None,
    ) -> None:
        self.index = index  # None: keep only the stock set (warm-up of a volatile, in-process set)
        self.stock = stock
        self.topics = tuple(topics)
        self.on_index_write = on_index_write  # e.g. invalidate this process's search result cache

    async def handle(self, events: Sequence[Envelope]) -> None:
        catalog: dict[str, Envelope] = {}
        stock: dict[str, StockChange] = {}
        for event in events:
            payload = event.payload
            if isinstance(payload, ProductUpserted | ProductRemoved):
                product_id = (
                    payload.product.product_id if isinstance(payload, ProductUpserted) else payload.product_id
                )
                seen = catalog.get(product_id)
                if seen is None or event.revision > seen.revision:
                    catalog[product_id] = event
            elif isinstance(payload, StockLevelChanged):
                seen_stock = stock.get(payload.sku)
                if seen_stock is None or event.revision > seen_stock.revision:
                    stock[payload.sku] = StockChange(payload.sku, payload.in_stock, event.revision)
            # other event types on these topics (supplier onboarded, restock alerts) are not searchable

        result = await self.stock.apply(list(stock.values()))
        if catalog:
            await self.stock.link([self._link(event) for event in catalog.values()])
        if self.index is not None and (catalog or stock):
            try:
                await self._write_index(catalog, stock, result.applied, result.flipped)
            finally:
                if self.on_index_write is not None:
                    self.on_index_write()

    @staticmethod
    def _link(event: Envelope) -> ProductLink:
        payload = event.payload
        if isinstance(payload, ProductUpserted):
            return ProductLink(payload.product.product_id, payload.product.sku)
        return ProductLink(payload.product_id, None)

    async def _write_index(
        self,
        catalog: dict[str, Envelope],
        stock: dict[str, StockChange],
        applied: Sequence[StockChange],
        flipped: Sequence[StockChange],
    ) -> None:
        index = self.index
        assert index is not None
        upserts = [e for e in catalog.values() if isinstance(e.payload, ProductUpserted)]
        removals = [
            (e.payload.product_id, e.revision)
            for e in catalog.values()
            if isinstance(e.payload, ProductRemoved)
        ]
        if upserts:
            out = await self.stock.out_of_stock([e.payload.product.sku for e in upserts])
            documents = [
                document_from_product(
                    e.payload.product,
                    e.revision,
                    in_stock=e.payload.product.sku not in out,
                    created_at_ms=_epoch_ms(e),
                )
                for e in upserts
            ]
            await index.upsert(documents)
        if removals:
            await index.delete(removals)

        # Index stock flags: SKUs whose state flipped, plus SKUs we did not apply (a duplicate, or another
        # writer such as a rebuild applied it first: the flag is then written from the current truth).
        applied_skus = {c.sku for c in applied}
        flipped_skus = {c.sku for c in flipped}
        touched = [sku for sku in stock if sku in flipped_skus or sku not in applied_skus]
        if not touched:
            return
        products = await self.stock.products_for(touched)
        if not products:
            return
        out = await self.stock.out_of_stock(list(products))
        # Products upserted in this batch are flagged too: the index may have skipped that upsert as a
        # stale or repeated revision, keeping an older flag. set_stock_flags only rewrites what differs.
        flags = [
            (product_id, sku not in out)
            for sku, product_ids in products.items()
            for product_id in product_ids
        ]
        if flags:
            await index.set_stock_flags(flags)
            if any(in_stock for _, in_stock in flags):
                await index.refresh()  # a restock must be searchable again at once
