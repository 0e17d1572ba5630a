"""The commerce context's own price list: catalog events -> ``commerce_prices`` (consumer group
``commerce.prices``), so a cart reads each line's current price with one join, never the search index.

Idempotent: only the newest revision per SKU is kept (the store refuses older ones), so redelivery or a
replay changes nothing. Runs in every process that serves commerce routes, like the inventory's feed
consumer: the prices are part of this context's state, not an optional read model.
"""

from __future__ import annotations

from collections.abc import Sequence

from commerce.cart_cache import CartCache
from commerce.domain import Price
from commerce.port import CommerceStore, PriceUpdate
from kernel.contracts.events import CATALOG_TOPIC, Envelope, ProductRemoved, ProductUpserted
from kernel.contracts.identifiers import catalog_sku
from kernel.eventlog.port import EventLog
from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask

PRICES_GROUP = "commerce.prices"


def price_updates(events: Sequence[Envelope]) -> list[PriceUpdate]:
    """Pure: the newest price per SKU in a batch (None for a removed product)."""
    newest: dict[str, PriceUpdate] = {}
    for event in events:
        payload = event.payload
        if isinstance(payload, ProductUpserted):
            p = payload.product
            sku = catalog_sku(p.supplier_id, p.sku)
            price: Price | None = Price(
                sku=sku, product_id=p.product_id, price=p.price, currency=p.currency, title=p.title,
                revision=event.revision,
            )  # fmt: skip
            update = PriceUpdate(sku, p.product_id, price, event.revision)
        elif isinstance(payload, ProductRemoved):
            sku = catalog_sku(payload.supplier_id, payload.sku)
            update = PriceUpdate(sku, payload.product_id, None, event.revision)
        else:
            continue
        seen = newest.get(sku)
        if seen is None or seen.revision < update.revision:
            newest[sku] = update
    return list(newest.values())


class PricesProjection:
    """After each batch with prices, the store's price generation (bumped by any change, in its
    transaction) is copied into the cart cache: cached carts show prices, each older copy becomes a miss.
    The copy is part of the batch: if it fails, the batch is redelivered and copies it again."""

    name = "commerce-prices"
    topics = (CATALOG_TOPIC,)

    def __init__(self, store: CommerceStore, carts: CartCache | None = None) -> None:
        self.store, self.carts = store, carts

    async def handle(self, events: Sequence[Envelope]) -> None:
        updates = price_updates(events)
        await self.store.put_prices(updates)
        if self.carts is not None and updates:
            await self.carts.prices_changed(await self.store.price_generation())


def prices_projector(
    event_log: EventLog,
    store: CommerceStore,
    *,
    metrics: ProjectorMetrics,
    carts: CartCache | None = None,
    group: str = PRICES_GROUP,
) -> ProjectorTask:
    return ProjectorTask(
        event_log, PricesProjection(store, carts), group=group, metrics=metrics, poll_timeout=0.2
    )
