"""Identifiers every context agrees on.

A stock-keeping unit is the supplier's own code, so two suppliers may use the same one. Everywhere
outside a supplier's feed (events, inventory rows, Redis keys, API paths, search hits) a SKU is
therefore *scoped* by its supplier: ``"<supplier_id>:<sku>"``, the same form as a product id. Supplier
ids never contain ``:``, so the first ``:`` splits a scoped SKU unambiguously, whatever the SKU holds.
"""

from __future__ import annotations

from typing import Final, NamedTuple

SCOPE_SEPARATOR: Final = ":"


class ScopedSku(NamedTuple):
    supplier_id: str
    sku: str  # the supplier's own code


def scoped_sku(supplier_id: str, sku: str) -> str:
    """The inventory key of supplier ``supplier_id``'s ``sku``."""
    return f"{supplier_id}{SCOPE_SEPARATOR}{sku}"


def split_scoped_sku(key: str) -> ScopedSku:
    """``"demo:SYN-1"`` -> ``ScopedSku("demo", "SYN-1")``; ValueError for a key that is not scoped."""
    supplier_id, separator, sku = key.partition(SCOPE_SEPARATOR)
    if not separator or not supplier_id or not sku:
        raise ValueError(f"{key!r} is not a supplier-scoped SKU '<supplier_id>{SCOPE_SEPARATOR}<sku>'")
    return ScopedSku(supplier_id, sku)


def catalog_sku(supplier_id: str, sku: str) -> str:
    """The scoped SKU of a catalog event's product: catalog events written before SKUs were scoped carry
    the supplier's bare code, later ones the scoped key (a bare code that already starts with
    ``"<supplier_id>:"`` is taken as scoped)."""
    if sku.startswith(supplier_id + SCOPE_SEPARATOR):
        return sku
    return scoped_sku(supplier_id, sku)
