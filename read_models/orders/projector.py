"""``OrderPlaced`` events -> the orders store (consumer group ``read-models.orders``).

Idempotent: within a batch only the newest revision per order is written, and the store refuses a
revision it already has or has surpassed, so redelivery and a full replay leave the newest state.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from kernel.contracts.events import COMMERCE_TOPIC, Envelope, OrderPlaced
from kernel.eventlog.port import EventLog
from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask
from read_models.orders.port import Order, OrderLine, OrdersStore

ORDERS_GROUP = "read-models.orders"


def _money(value: Decimal) -> str:
    return format(value.normalize(), "f")


def orders_from_events(events: Sequence[Envelope]) -> list[Order]:
    """Pure: the newest order per id in a batch."""
    newest: dict[str, Order] = {}
    for event in events:
        p = event.payload
        if not isinstance(p, OrderPlaced):
            continue
        order = Order(
            order_id=p.order_id,
            checkout_id=p.checkout_id,
            customer_id=p.customer_id,
            status=p.status,
            lines=tuple(
                OrderLine(
                    sku=x.sku,
                    product_id=x.product_id,
                    title=x.title,
                    quantity=x.quantity,
                    unit_price=_money(x.unit_price),
                )
                for x in p.lines
            ),
            total=_money(p.total),
            currency=p.currency,
            payment_reference=p.payment_reference,
            placed_at=p.placed_at.isoformat().replace("+00:00", "Z"),
            placed_ts=p.placed_at.timestamp(),
            revision=event.revision,
        )
        seen = newest.get(order.order_id)
        if seen is None or seen.revision < order.revision:
            newest[order.order_id] = order
    return list(newest.values())


class OrdersProjection:
    name = "orders"
    topics = (COMMERCE_TOPIC,)

    def __init__(self, store: OrdersStore) -> None:
        self.store = store
        self.written = 0

    async def handle(self, events: Sequence[Envelope]) -> None:
        orders = orders_from_events(events)
        if orders:
            self.written += await self.store.put_many(orders)


def orders_projector(
    event_log: EventLog,
    store: OrdersStore,
    *,
    metrics: ProjectorMetrics,
    group: str = ORDERS_GROUP,
    replay: bool = False,
    poll_timeout: float = 0.2,
) -> ProjectorTask:
    """The live projector as a background task (``serve`` in-process, or ``emporium project``)."""
    return ProjectorTask(
        event_log,
        OrdersProjection(store),
        group=group,
        metrics=metrics,
        replay=replay,
        poll_timeout=poll_timeout,
    )
