"""Sales as activity: a confirmed reservation publishes ``Purchased`` (the analytics' sales fact).

Inventory knows the SKU, quantity and customer of a reservation, not the product's id, price, category or
brand: those belong to the catalog. The composition root hands in a ``ProductLookup`` (in the app: the
search read model, which already answers product pages), and the lookup runs in the activity publisher's
background task, so confirming never waits for it or for the log.
"""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal
from typing import Any, Protocol

import msgspec
import structlog

from inventory.domain import Reservation
from kernel.activity import ActivityPublisher
from kernel.contracts.events import Purchased, PurchasedItem

log = structlog.get_logger(__name__)

RECENT_ORDERS = 10_000  # confirmations remembered, so that a repeated confirm publishes no second sale


class SoldProduct(msgspec.Struct, frozen=True, kw_only=True):
    """What the catalog says about the product a SKU sells, at the time of the sale."""

    product_id: str
    unit_price: Decimal
    currency: str = "INR"
    category: str = ""
    brand: str = ""


class ProductLookup(Protocol):
    async def __call__(self, sku: str) -> SoldProduct | None:
        """The product ``sku`` (supplier-scoped) sells, or None when the catalog does not know it."""
        ...


def purchased(
    reservation: Reservation, product: SoldProduct, *, session_id: str | None, region: str | None
) -> Purchased:
    """The sale of a confirmed reservation: the order id is the reservation id, the user its customer."""
    item = PurchasedItem(
        product_id=product.product_id,
        sku=reservation.sku,
        quantity=reservation.quantity,
        unit_price=product.unit_price,
        category=product.category,
        brand=product.brand,
    )
    return Purchased(
        order_id=reservation.reservation_id,
        user_id=reservation.customer_id,
        items=(item,),
        currency=product.currency,
        session_id=session_id,
        region=region,
    )


class SalesRecorder:
    """Publishes the sale of each confirmed reservation once per process, fire-and-forget.

    A confirm repeated within this process publishes nothing more; one repeated after a restart publishes
    the same ``order_id`` again (readers dedupe on it; the archive names such rows by order).
    """

    def __init__(self, publisher: ActivityPublisher, lookup: ProductLookup) -> None:
        self.publisher = publisher
        self.lookup = lookup
        self._recent: OrderedDict[str, None] = OrderedDict()

    def __deepcopy__(self, memo: dict[int, Any]) -> SalesRecorder:
        return self  # one per app, shared as it is by Litestar's copies of a router's ``opt``

    def confirmed(self, reservation: Reservation, *, session_id: str | None, region: str | None) -> None:
        order_id = reservation.reservation_id
        if order_id in self._recent:
            return
        self._recent[order_id] = None
        if len(self._recent) > RECENT_ORDERS:
            self._recent.popitem(last=False)

        async def build() -> Purchased | None:
            product = await self.lookup(reservation.sku)
            if product is None:
                log.warning("sale not published: the catalog does not know the SKU", sku=reservation.sku)
                return None
            return purchased(reservation, product, session_id=session_id, region=region)

        self.publisher.emit(build, key=f"order:{order_id}")

    async def start(self) -> None:
        await self.publisher.start()

    async def stop(self) -> None:
        await self.publisher.stop()
