"""Build the search index's document from a catalog product (used by the projector)."""

from __future__ import annotations

from emporium.contracts.events import Product
from search.port import SearchDocument


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
    stock = product.stock or {}
    warehouses = tuple(sorted(w for w, qty in stock.items() if qty > 0))
    return SearchDocument(
        product_id=product.product_id,
        revision=revision,
        supplier_id=product.supplier_id,
        sku=product.sku,
        title=product.title,
        description=product.description,
        brand=product.brand.strip(),
        category_path=tuple(p.strip() for p in product.category_path if p.strip()),
        price=product.price,
        currency=product.currency,
        rating=product.rating,
        in_stock=in_stock,
        warehouses=warehouses,
        popularity=popularity,
        created_at_ms=created_at_ms,
    )
