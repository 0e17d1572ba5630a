"""Event contracts: one envelope, typed payloads, one codec.

Every event carries a per-entity ``revision`` so that projectors can drop stale or repeated
deliveries (the log is at-least-once). Payloads are looked up by ``type``; unknown fields are
ignored so producers can add fields without breaking old consumers.

Envelopes, payloads and products are ``gc=False``: frozen values that cannot form reference cycles, so the
cyclic garbage collector need not track them; a projector holds tens of thousands of them per batch, and
tracking them made collections walk them (measured: decoding 40k catalog events takes ~25% less CPU).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, Final

import msgspec

# Topics -------------------------------------------------------------------------------------

CATALOG_TOPIC: Final = "catalog"
INVENTORY_TOPIC: Final = "inventory"
ACTIVITY_TOPIC: Final = "activity"
LOGISTICS_TOPIC: Final = "logistics"
RECOMMENDATIONS_TOPIC: Final = "recommendations"
TRENDING_TOPIC: Final = "trending"
COMMERCE_TOPIC: Final = "commerce"
DEAD_LETTER_TOPIC: Final = "dead-letter"


class Payload(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """Base of every payload; ``event_type`` names it on the wire."""

    event_type: ClassVar[str]
    topic: ClassVar[str]


# Catalog ------------------------------------------------------------------------------------


class Product(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """The canonical product every supplier feed is mapped into."""

    product_id: str  # supplier-scoped and stable: "<supplier_id>:<supplier product ref>"
    supplier_id: str
    sku: str
    title: str
    description: str = ""
    brand: str = ""
    category_path: tuple[str, ...] = ()
    price: Decimal
    list_price: Decimal | None = None
    currency: str = "INR"
    attributes: dict[str, str] = {}
    rating: float | None = None
    stock: dict[str, int] | None = None  # warehouse id -> quantity, when the feed gives it
    image_url: str | None = None


class ProductUpserted(Payload, frozen=True):
    event_type: ClassVar[str] = "catalog.product_upserted"
    topic: ClassVar[str] = CATALOG_TOPIC
    product: Product


class ProductRemoved(Payload, frozen=True):
    event_type: ClassVar[str] = "catalog.product_removed"
    topic: ClassVar[str] = CATALOG_TOPIC
    product_id: str
    supplier_id: str
    sku: str


class SupplierOnboarded(Payload, frozen=True):
    event_type: ClassVar[str] = "catalog.supplier_onboarded"
    topic: ClassVar[str] = CATALOG_TOPIC
    supplier_id: str
    name: str


# Inventory ----------------------------------------------------------------------------------


class StockLevelChanged(Payload, frozen=True):
    """Stock of one SKU after a movement; ``in_stock`` is what the out-of-stock read model keeps."""

    event_type: ClassVar[str] = "inventory.stock_level_changed"
    topic: ClassVar[str] = INVENTORY_TOPIC
    sku: str
    on_hand: int
    held: int
    sold: int
    available: int
    in_stock: bool
    reason: str = ""  # e.g. "reserve", "release", "expire", "confirm", "feed", "admin"


class RestockAlert(Payload, frozen=True):
    event_type: ClassVar[str] = "inventory.restock_alert"
    topic: ClassVar[str] = INVENTORY_TOPIC
    sku: str
    available: int
    threshold: int


# Logistics ----------------------------------------------------------------------------------


class ZoneWarehouse(msgspec.Struct, kw_only=True, frozen=True):
    warehouse_id: str
    eta_hours: int


class DeliveryZoneUpdated(Payload, frozen=True):
    """Which warehouses can ship to a delivery zone, and how fast."""

    event_type: ClassVar[str] = "logistics.delivery_zone_updated"
    topic: ClassVar[str] = LOGISTICS_TOPIC
    zone: str
    warehouses: tuple[ZoneWarehouse, ...]


# Storefront activity ------------------------------------------------------------------------


class SearchPerformed(Payload, frozen=True):
    event_type: ClassVar[str] = "activity.search_performed"
    topic: ClassVar[str] = ACTIVITY_TOPIC
    query: str
    filters: dict[str, str] = {}
    total: int = 0
    user_id: str | None = None
    session_id: str | None = None
    region: str | None = None  # the shopper's delivery region (``deliver_to`` or ``X-Region``)


class ProductViewed(Payload, frozen=True):
    event_type: ClassVar[str] = "activity.product_viewed"
    topic: ClassVar[str] = ACTIVITY_TOPIC
    product_id: str
    user_id: str | None = None
    session_id: str | None = None
    region: str | None = None
    category: str = ""
    brand: str = ""


class AddedToCart(Payload, frozen=True):
    event_type: ClassVar[str] = "activity.added_to_cart"
    topic: ClassVar[str] = ACTIVITY_TOPIC
    product_id: str
    sku: str
    quantity: int
    user_id: str | None = None
    session_id: str | None = None
    region: str | None = None
    unit_price: Decimal | None = None


class PurchasedItem(msgspec.Struct, kw_only=True, frozen=True):
    product_id: str
    sku: str
    quantity: int
    unit_price: Decimal
    category: str = ""
    brand: str = ""


class Purchased(Payload, frozen=True):
    """A confirmed sale (a confirmed reservation, later a confirmed checkout): the analytics' sales fact."""

    event_type: ClassVar[str] = "activity.purchased"
    topic: ClassVar[str] = ACTIVITY_TOPIC
    order_id: str
    user_id: str
    items: tuple[PurchasedItem, ...]
    currency: str = "INR"
    session_id: str | None = None
    region: str | None = None


# Commerce -----------------------------------------------------------------------------------


class OrderLine(msgspec.Struct, kw_only=True, frozen=True):
    """One line of an order: the units sold of one supplier-scoped SKU, at the price the shopper paid."""

    sku: str
    product_id: str
    quantity: int
    unit_price: Decimal
    title: str = ""


class OrderPlaced(Payload, frozen=True):
    """A confirmed checkout became an order (key ``order:<order_id>``, revision 1; later changes of the
    order, such as a cancellation, would carry higher revisions)."""

    event_type: ClassVar[str] = "commerce.order_placed"
    topic: ClassVar[str] = COMMERCE_TOPIC
    order_id: str
    checkout_id: str
    customer_id: str
    lines: tuple[OrderLine, ...]
    total: Decimal
    placed_at: datetime
    currency: str = "INR"
    status: str = "placed"
    payment_reference: str = ""


# Recommendations ----------------------------------------------------------------------------


class RecommendationsComputed(Payload, frozen=True):
    """One user's ranked products from an analytics run (key ``user:<user_id>``, revision: the run's)."""

    event_type: ClassVar[str] = "recommendations.computed"
    topic: ClassVar[str] = RECOMMENDATIONS_TOPIC
    user_id: str
    product_ids: tuple[str, ...]
    model: str = "als"


class RelatedProductsComputed(Payload, frozen=True):
    """Products bought together with one product (key ``related:<product_id>``)."""

    event_type: ClassVar[str] = "recommendations.related_computed"
    topic: ClassVar[str] = RECOMMENDATIONS_TOPIC
    product_id: str
    product_ids: tuple[str, ...]
    model: str = "bought_together"


class PopularProductsComputed(Payload, frozen=True):
    """Time-decayed popular products, the fallback for unknown users (key ``popular:<region>``;
    ``region`` empty means every region)."""

    event_type: ClassVar[str] = "recommendations.popular_computed"
    topic: ClassVar[str] = RECOMMENDATIONS_TOPIC
    product_ids: tuple[str, ...]
    region: str = ""
    model: str = "popularity"


# Trending -----------------------------------------------------------------------------------


class TrendingEntry(msgspec.Struct, kw_only=True, frozen=True):
    key: str  # the query text (kind "queries") or the product id (kind "products")
    score: float  # time-decayed weight, the ranking
    count: int  # raw events behind it in the window (at least the job's minimum support)


class TrendingComputed(Payload, frozen=True):
    """One trending list from an analytics run (key ``trending:<kind>:<window>:<region>``).

    ``window`` is ``hour`` or ``day``; ``kind`` is ``queries`` (most searched) or ``products`` (most
    viewed and bought, a purchase weighing more than a view); ``region`` empty means every region;
    ``window_end`` is the end of the period the list describes."""

    event_type: ClassVar[str] = "trending.computed"
    topic: ClassVar[str] = TRENDING_TOPIC
    window: str
    kind: str
    window_end: datetime
    entries: tuple[TrendingEntry, ...]
    region: str = ""
    run_id: str = ""


PAYLOAD_TYPES: Final[dict[str, type[Payload]]] = {
    cls.event_type: cls
    for cls in (
        ProductUpserted,
        ProductRemoved,
        SupplierOnboarded,
        StockLevelChanged,
        RestockAlert,
        DeliveryZoneUpdated,
        SearchPerformed,
        ProductViewed,
        AddedToCart,
        Purchased,
        OrderPlaced,
        RecommendationsComputed,
        RelatedProductsComputed,
        PopularProductsComputed,
        TrendingComputed,
    )
}


# Envelope -----------------------------------------------------------------------------------


class Envelope(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """What travels on the log: metadata plus one typed payload."""

    event_id: str
    type: str
    schema_version: int = 1
    occurred_at: datetime
    key: str  # the entity the revision belongs to; also the partitioning key
    revision: int
    producer: str
    payload: Any  # a Payload subclass once decoded

    @property
    def topic(self) -> str:
        return PAYLOAD_TYPES[self.type].topic


class _WireEnvelope(msgspec.Struct, kw_only=True, gc=False):
    event_id: str
    type: str
    schema_version: int = 1
    occurred_at: datetime
    key: str
    revision: int
    producer: str
    payload: msgspec.Raw


class EventDecodeError(ValueError):
    """A message that is not a valid event; it goes to the dead-letter topic with this reason."""


def new_event(payload: Payload, *, key: str, revision: int, producer: str) -> Envelope:
    return Envelope(
        event_id=uuid.uuid4().hex,
        type=payload.event_type,
        occurred_at=datetime.now(UTC),
        key=key,
        revision=revision,
        producer=producer,
        payload=payload,
    )


_encoder = msgspec.json.Encoder(decimal_format="string")
_wire_decoder = msgspec.json.Decoder(_WireEnvelope)
_payload_decoders = {name: msgspec.json.Decoder(cls) for name, cls in PAYLOAD_TYPES.items()}


def encode_event(event: Envelope) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes) -> Envelope:
    """Decode bytes from the log; raise EventDecodeError with a reason a human can act on."""
    try:
        wire = _wire_decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise EventDecodeError(f"bad envelope: {exc}") from exc
    decoder = _payload_decoders.get(wire.type)
    if decoder is None:
        raise EventDecodeError(f"unknown event type {wire.type!r}")
    try:
        payload = decoder.decode(wire.payload)
    except msgspec.DecodeError as exc:
        raise EventDecodeError(f"bad payload for {wire.type}: {exc}") from exc
    return Envelope(
        event_id=wire.event_id,
        type=wire.type,
        schema_version=wire.schema_version,
        occurred_at=wire.occurred_at,
        key=wire.key,
        revision=wire.revision,
        producer=wire.producer,
        payload=payload,
    )


# Dead letters -------------------------------------------------------------------------------


class DeadLetter(msgspec.Struct, kw_only=True, frozen=True):
    """What lands on DEAD_LETTER_TOPIC for a record no consumer could decode: enough to find,
    inspect and re-publish the original (``value_b64`` holds its exact bytes)."""

    reason: str
    topic: str
    partition: int
    offset: int
    key: str | None
    value_b64: str
    group: str
    failed_at: datetime


_dead_letter_decoder = msgspec.json.Decoder(DeadLetter)


def encode_dead_letter(letter: DeadLetter) -> bytes:
    return _encoder.encode(letter)


def decode_dead_letter(data: bytes) -> DeadLetter:
    return _dead_letter_decoder.decode(data)
