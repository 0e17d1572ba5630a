"""Catalog-feed stock taken in a batch at a time (no I/O; both engines use it).

The feed consumer hands the engine every stock of a batch of catalog events at once (a catch-up after a
restart is thousands of them): one transaction on SQLite, a few SKU transactions in flight on the
cluster engine. Only the newest revision of each SKU in a batch counts, and a feed that names the stock
already kept changes nothing (no write, no event): most catalog events change a price, not stock.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from inventory.domain import StockLevel, decide_feed_stock


class FeedStock(NamedTuple):
    """One product's stock in a catalog event: warehouse -> quantity, at the product's revision."""

    sku: str
    warehouses: dict[str, int]
    feed_revision: int


class FeedOutcome(NamedTuple):
    applied: int  # SKUs whose stock changed
    rejected: dict[str, str]  # SKU -> why the engine refused its stock (nothing changed for it)


def latest_per_sku(changes: Iterable[FeedStock]) -> list[FeedStock]:
    """The newest revision of each SKU (an older one would be ignored after it anyway), first seen first."""
    latest: dict[str, FeedStock] = {}
    for change in changes:
        kept = latest.get(change.sku)
        if kept is None or change.feed_revision > kept.feed_revision:
            latest[change.sku] = change
    return list(latest.values())


def decide_feed_change(before: StockLevel | None, sku: str, warehouses: dict[str, int]) -> StockLevel | None:
    """The stock after a catalog feed's breakdown, or None when it names exactly what is kept."""
    if before is not None and before.warehouses == warehouses and before.on_hand == sum(warehouses.values()):
        return None
    return decide_feed_stock(before, sku, warehouses)
