"""Build the search index's document from a catalog product (used by the projector).

This runs once per catalog event on the projector's event-loop thread, which also polls and decodes the
next batch and holds the GIL while doing so, so it is kept cheap: category paths (a few hundred distinct
ones across whole catalogs) are cleaned once and cached, and products without per-warehouse stock skip
the warehouse scan.
"""

from __future__ import annotations

from functools import lru_cache

from kernel.contracts.events import Product
from search.port import SearchDocument


@lru_cache(maxsize=8192)
def clean_category_path(path: tuple[str, ...]) -> tuple[str, ...]:
    """Levels trimmed, empty levels dropped (cached: a catalog repeats few distinct paths)."""
    return tuple(stripped for stripped in (p.strip() for p in path) if stripped)


def _warehouses(stock: dict[str, int] | None) -> tuple[str, ...]:
    if not stock:
        return ()
    return tuple(sorted(w for w, qty in stock.items() if qty > 0))


def document_from_product(
    product: Product,
    revision: int,
    *,
    in_stock: bool,
    created_at_ms: int,
    popularity: float = 0.0,
) -> SearchDocument:
    """One ``SearchDocument`` per product revision.

    ``warehouses`` are the warehouses that hold stock (quantity > 0) per the feed: the delivery filter
    keeps a product only when one of them ships to the shopper's zone. ``in_stock`` comes from the
    caller because the stock truth lives in the out-of-stock read model, not in the catalog event.
    """
    return SearchDocument(
        product_id=product.product_id,
        revision=revision,
        supplier_id=product.supplier_id,
        sku=product.sku,
        title=product.title,
        description=product.description,
        brand=product.brand.strip(),
        category_path=clean_category_path(product.category_path),
        price=product.price,
        currency=product.currency,
        rating=product.rating,
        in_stock=in_stock,
        warehouses=_warehouses(product.stock),
        popularity=popularity,
        created_at_ms=created_at_ms,
    )
