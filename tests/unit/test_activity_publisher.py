"""``kernel.activity.ActivityPublisher`` with payloads built off the request path, and inventory's
``SalesRecorder`` on top of it (one sale per confirmed reservation, nothing when the catalog is silent)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from prometheus_client import CollectorRegistry

from inventory.domain import Reservation, Status
from inventory.sales import SalesRecorder, SoldProduct
from kernel.activity import ActivityMetrics, ActivityPublisher
from kernel.contracts.events import Purchased, SearchPerformed, decode_event
from kernel.eventlog.port import OutgoingMessage


class RecordingLog:
    def __init__(self) -> None:
        self.published: list[tuple[str, OutgoingMessage]] = []

    async def publish(self, topic: str, messages: Sequence[OutgoingMessage]) -> None:
        self.published += [(topic, m) for m in messages]


def reservation(rid: str = "r-1", sku: str = "acme:K1") -> Reservation:
    return Reservation(
        reservation_id=rid,
        sku=sku,
        quantity=2,
        customer_id="ann",
        status=Status.CONFIRMED,
        expires_at=0.0,
        created_at=0.0,
        idempotency_key="k",
    )


async def test_builders_run_off_the_request_path_and_failures_are_counted() -> None:
    log = RecordingLog()
    registry = CollectorRegistry()
    publisher = ActivityPublisher(log, metrics=ActivityMetrics.of(registry), producer="t")  # type: ignore[arg-type]

    async def nothing() -> None:
        return None

    async def broken() -> SearchPerformed:
        raise RuntimeError("lookup down")

    async def later() -> SearchPerformed:
        return SearchPerformed(query="late")

    for item in (SearchPerformed(query="now"), nothing, broken, later):
        publisher.emit(item, key="k")  # type: ignore[arg-type]
    await publisher.flush()
    assert [decode_event(m.value).payload.query for _, m in log.published] == ["now", "late"]
    assert (
        registry.get_sample_value("emporium_activity_events_dropped_total", {"reason": "lookup_failed"}) == 1
    )
    assert ActivityMetrics.of(registry) is ActivityMetrics.of(registry)  # one set per registry


async def test_a_confirmed_reservation_is_one_sale_with_the_catalogs_facts() -> None:
    log = RecordingLog()
    publisher = ActivityPublisher(log, metrics=ActivityMetrics.of(CollectorRegistry()), producer="inventory")  # type: ignore[arg-type]
    catalog = {
        "acme:K1": SoldProduct(
            product_id="acme:kettle", unit_price=Decimal("12.50"), category="Home", brand="Acme"
        )
    }

    async def lookup(sku: str) -> SoldProduct | None:
        return catalog.get(sku)

    sales = SalesRecorder(publisher, lookup)
    sales.confirmed(reservation(), session_id="s", region="DEL")
    sales.confirmed(reservation(), session_id="s", region="DEL")  # a repeated confirm
    sales.confirmed(reservation("r-2", sku="acme:UNKNOWN"), session_id=None, region=None)
    await publisher.flush()
    (message,) = [m for _, m in log.published]
    assert message.key == "order:r-1"
    sale = decode_event(message.value).payload
    assert isinstance(sale, Purchased)
    assert (sale.order_id, sale.user_id, sale.session_id, sale.region) == ("r-1", "ann", "s", "DEL")
    (item,) = sale.items
    assert (item.product_id, item.sku, item.quantity, item.unit_price, item.category, item.brand) == (
        "acme:kettle",
        "acme:K1",
        2,
        Decimal("12.50"),
        "Home",
        "Acme",
    )
