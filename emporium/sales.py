"""Wiring of sales activity: inventory's ``ProductLookup`` answered by the search read model.

Inventory must not import search; the composition root joins them. A SKU's product comes from the
out-of-stock set's catalog links (SKU -> product ids, kept by the search projection) and its price,
category and brand from the index document, the same data a product page shows.
"""

from __future__ import annotations

from inventory.sales import ProductLookup, SoldProduct
from search.out_of_stock import OutOfStockSet
from search.port import SearchIndex


def catalog_lookup(index: SearchIndex, stock: OutOfStockSet) -> ProductLookup:
    async def lookup(sku: str) -> SoldProduct | None:
        product_ids = sorted((await stock.products_for([sku])).get(sku, ()))
        if not product_ids:
            return None
        documents = await index.get(product_ids[:1])
        if not documents:
            return None
        doc = documents[0]
        return SoldProduct(
            product_id=doc.product_id,
            unit_price=doc.price,
            currency=doc.currency,
            category=">".join(doc.category_path),
            brand=doc.brand,
        )

    return lookup
