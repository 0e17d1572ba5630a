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

Delivery zones are projected by ``search.projectors.ZoneProjection`` in every serving process.
The index stock flag is near-real-time and lets the index compute totals and facets over in-stock items;
the out-of-stock set is exact and is checked for every result page.

With an index that stages writes (Tantivy), a runner may ``stage`` several batches and ``flush`` them in one
index commit (``handle`` is both); steps 1 and 2 are applied at once either way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec
import structlog

from kernel.contracts.events import (
    CATALOG_TOPIC,
    INVENTORY_TOPIC,
    Envelope,
    ProductRemoved,
    ProductUpserted,
    StockLevelChanged,
)
from kernel.contracts.identifiers import catalog_sku
from search.documents import document_from_product
from search.out_of_stock import OutOfStockSet, ProductLink, StockChange
from search.port import IndexChange, SearchIndex, SearchIndexError

log = structlog.get_logger(__name__)


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
        on_index_write: Callable[[IndexChange], None] | None = None,
    ) -> None:
        self.index = index  # None: keep only the stock set (warm-up of a volatile, in-process set)
        self.stock = stock
        self.topics = tuple(topics)
        # Called after each index write that may change a search answer, with what it changed (e.g. to
        # invalidate this process's result cache); never for stock events that flip no SKU, which change
        # nothing searchable: a stock feed updating quantities does not flush the cache.
        self.on_index_write = on_index_write
        self._staged_into: SearchIndex | None = None  # holds writes until ``flush``
        self._staged_changes: IndexChange | None = None  # what the staged writes change
        self._refresh_due = False  # a restock was staged: refresh once it is committed

    @property
    def staging(self) -> bool:
        return self.index is not None and self.index.stages_writes

    async def handle(self, events: Sequence[Envelope]) -> None:
        await self.stage(events)
        await self.flush()

    async def flush(self) -> None:
        """Commit the staged index writes (durable and searchable on return)."""
        staged, self._staged_into = self._staged_into, None
        if staged is None:
            return
        refresh, self._refresh_due = self._refresh_due, False
        changed, self._staged_changes = self._staged_changes, None
        try:
            self._check_staging_target(staged)
            await staged.commit_staged()
            if refresh:
                await staged.refresh()
        finally:
            if changed is not None:
                self._index_written(changed)

    async def stage(self, events: Sequence[Envelope]) -> None:
        """Apply stock and links now; write the index (staged when it can stage: see ``flush``)."""
        catalog: dict[str, Envelope] = {}
        stock: dict[str, StockChange] = {}
        for event in events:
            payload = event.payload
            if isinstance(payload, ProductUpserted):
                product_id = payload.product.product_id
                event = _with_scoped_sku(event, payload)
            elif isinstance(payload, ProductRemoved):
                product_id = payload.product_id
            elif isinstance(payload, StockLevelChanged):
                seen_stock = stock.get(payload.sku)
                if seen_stock is None or event.revision > seen_stock.revision:
                    stock[payload.sku] = StockChange(payload.sku, payload.in_stock, event.revision)
                continue
            else:  # other event types on these topics (supplier onboarded, restock alerts) are not searchable
                continue
            seen = catalog.get(product_id)
            if seen is None or event.revision > seen.revision:
                catalog[product_id] = event

        result = await self.stock.apply(list(stock.values()))
        if catalog:
            links = []
            for product_id, event in catalog.items():
                payload = event.payload
                sku = payload.product.sku if isinstance(payload, ProductUpserted) else None
                links.append(ProductLink(product_id, sku))
            await self.stock.link(links)
        if self.index is not None and (catalog or stock):
            if self.index.stages_writes:
                if self._staged_into is not None:
                    self._check_staging_target(self._staged_into)
                self._staged_into = self.index  # before writing: a failed write still needs the flush
                staged_before = self._staged_changes
                self._staged_changes = IndexChange.CONTENT  # if the write fails midway
                change = await self._write_index(catalog, stock, result.applied, result.flipped)
                self._staged_changes = _larger(staged_before, change)
                return
            wrote: IndexChange | None = IndexChange.CONTENT  # a write that failed midway changed some
            try:
                wrote = await self._write_index(catalog, stock, result.applied, result.flipped)
            finally:
                if wrote is not None:
                    self._index_written(wrote)

    def _index_written(self, change: IndexChange) -> None:
        if self.on_index_write is not None:
            self.on_index_write(change)

    def _check_staging_target(self, target: SearchIndex) -> None:
        """Writes staged in an index that is no longer ours (a rebuild swapped ``self.index``) may be gone
        with it: fail, so that the runner hands every staged batch over again."""
        if target is not self.index:
            self._staged_into = None
            raise SearchIndexError("search index changed while writes were staged; writing them again")

    async def _write_index(
        self,
        catalog: dict[str, Envelope],
        stock: dict[str, StockChange],
        applied: Sequence[StockChange],
        flipped: Sequence[StockChange],
    ) -> IndexChange | None:
        """Write the batch into the index; what that changed (None: nothing written)."""
        index = self.index
        assert index is not None
        commit = not index.stages_writes  # staged writes wait for ``flush``
        await self._write_catalog(index, catalog, commit)
        flagged = await self._write_stock_flags(index, stock, applied, flipped, commit)
        return _larger(IndexChange.CONTENT if catalog else None, flagged)

    async def _write_catalog(self, index: SearchIndex, catalog: dict[str, Envelope], commit: bool) -> None:
        upserts: list[Envelope] = []
        removals: list[tuple[str, int]] = []
        for product_id, event in catalog.items():
            if isinstance(event.payload, ProductUpserted):
                upserts.append(event)
            else:
                removals.append((product_id, event.revision))
        if upserts:
            out = await self.stock.out_of_stock([e.payload.product.sku for e in upserts])
            # ``sort=newest`` orders by the time of the product's latest catalog event (the log keeps no
            # separate first-seen time, and a rebuild must reproduce the same value).
            documents = [
                document_from_product(
                    product,
                    e.revision,
                    in_stock=product.sku not in out,
                    created_at_ms=int(e.occurred_at.timestamp() * 1000),
                )
                for e in upserts
                for product in (e.payload.product,)
            ]
            await index.upsert(documents, commit=commit)
        if removals:
            await index.delete(removals, commit=commit)

    async def _write_stock_flags(
        self,
        index: SearchIndex,
        stock: dict[str, StockChange],
        applied: Sequence[StockChange],
        flipped: Sequence[StockChange],
        commit: bool,
    ) -> IndexChange | None:
        """Index stock flags: SKUs whose state flipped, plus SKUs we did not apply (a duplicate, or another
        writer such as a rebuild applied it first: the flag is then written from the current truth)."""
        applied_skus = {c.sku for c in applied}
        flipped_skus = {c.sku for c in flipped}
        touched = [sku for sku in stock if sku in flipped_skus or sku not in applied_skus]
        products = await self.stock.products_for(touched) if touched else {}
        if not products:
            return None
        out = await self.stock.out_of_stock(list(products))
        # Products upserted in this batch are flagged too: the index may have skipped that upsert as a
        # stale or repeated revision, keeping an older flag. set_stock_flags only rewrites what differs.
        flags = [
            (product_id, sku not in out)
            for sku, product_ids in products.items()
            for product_id in product_ids
        ]
        if not flags:
            return None
        await index.set_stock_flags(flags, commit=commit)
        if not any(in_stock for _, in_stock in flags):
            return IndexChange.STOCK_OUTS
        # a restock must be searchable again at once
        if commit:
            await index.refresh()
        else:
            self._refresh_due = True
        return IndexChange.CONTENT


def _with_scoped_sku(event: Envelope, payload: ProductUpserted) -> Envelope:
    """Catalog events written before SKUs were supplier-scoped carry the bare code: scope it, so a rebuild
    shows every hit with the key inventory knows it by."""
    product = payload.product
    sku = catalog_sku(product.supplier_id, product.sku)
    if sku == product.sku:
        return event
    scoped = ProductUpserted(product=msgspec.structs.replace(product, sku=sku))
    return msgspec.structs.replace(event, payload=scoped)


def _larger(a: IndexChange | None, b: IndexChange | None) -> IndexChange | None:
    """The change that covers both: any content change covers stock-outs."""
    if IndexChange.CONTENT in (a, b):
        return IndexChange.CONTENT
    return a or b
