"""Inventory domain: stock arithmetic, the reservation lifecycle and the flash-sale rules. No I/O.

Model (per SKU; a feed may give a per-warehouse breakdown, which is kept for reporting while
reservations draw from the SKU's pooled stock):

* ``on_hand`` - units put up for sale (set by an admin or a supplier feed),
* ``held``    - units in active reservations,
* ``sold``    - units in confirmed reservations,
* ``available = max(0, on_hand - held - sold)``.

A reservation is born ``held`` with an expiry and ends exactly once: ``confirmed`` (held -> sold),
``released`` or ``expired`` (held -> available). Terminal states never change again, which makes
every transition idempotent to replay. Both engine adapters apply these same rules; the cluster
adapter mirrors them in Lua (``inventory/lua``), and the contract suite checks both agree.
"""

from __future__ import annotations

import os
import re
import time
from enum import StrEnum
from typing import Final, NamedTuple

import msgspec

from kernel.contracts.events import Payload, RestockAlert, StockLevelChanged

MAX_QUANTITY: Final = 1_000  # units per reservation; more is a bulk order, not a checkout
MAX_ON_HAND: Final = 1_000_000_000
MIN_HOLD_SECONDS: Final = 1
MAX_HOLD_SECONDS: Final = 24 * 3600
DEFAULT_HOLD_SECONDS: Final = 600
DEFAULT_LOW_STOCK_THRESHOLD: Final = 5
# Identifiers travel inside Redis keys, the Lua scripts' line protocol and SQL literals: keep them
# printable and bounded. Always fullmatch: "$" would also accept a trailing newline.
MAX_ID_LENGTH: Final = 128
_ID_CHARS: Final = "[A-Za-z0-9][A-Za-z0-9._:/@+#=-]"
ID_PATTERN: Final = rf"{_ID_CHARS}{{0,{MAX_ID_LENGTH - 1}}}"  # customer, reservation id, idempotency key
# A SKU is supplier-scoped, "<supplier_id>:<sku>": a supplier id (64) and a supplier's code (128).
MAX_SKU_LENGTH: Final = 64 + 1 + MAX_ID_LENGTH
SKU_PATTERN: Final = rf"{_ID_CHARS}{{0,{MAX_SKU_LENGTH - 1}}}"
_ID_RE: Final = re.compile(ID_PATTERN)
_SKU_RE: Final = re.compile(SKU_PATTERN)
# A reservation's three identifiers in one regex call: validate_reserve runs for every request.
_RESERVE_IDS_RE: Final = re.compile(f"{SKU_PATTERN}\n{ID_PATTERN}\n{ID_PATTERN}")


class Status(StrEnum):
    HELD = "held"
    CONFIRMED = "confirmed"
    RELEASED = "released"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        return self is not Status.HELD


# Errors ------------------------------------------------------------------------------------


class InventoryError(Exception):
    """Base of the domain's refusals; each maps to one HTTP status in the API."""


class InvalidRequest(InventoryError):
    """Bad input (422)."""


class UnknownSku(InventoryError):
    def __init__(self, sku: str) -> None:
        super().__init__(f"unknown sku {sku!r}")
        self.sku = sku


class InsufficientStock(InventoryError):
    def __init__(self, sku: str, requested: int, available: int) -> None:
        super().__init__(f"only {available} of {sku!r} available, {requested} requested")
        self.sku, self.requested, self.available = sku, requested, max(0, available)


class LimitExceeded(InventoryError):
    def __init__(self, sku: str, limit: int, already: int, requested: int) -> None:
        super().__init__(
            f"per-customer limit for {sku!r} is {limit}; customer already has {already}, asked {requested}"
        )
        self.sku, self.limit, self.already, self.requested = sku, limit, already, requested


class ReservationNotFound(InventoryError):
    def __init__(self, reservation_id: str) -> None:
        super().__init__(f"unknown reservation {reservation_id!r}")
        self.reservation_id = reservation_id


class InvalidTransition(InventoryError):
    """Confirming a reservation that expired or was released, or releasing a confirmed one (409)."""

    def __init__(self, reservation_id: str, status: Status, action: str) -> None:
        super().__init__(f"cannot {action} reservation {reservation_id!r}: it is {status.value}")
        self.reservation_id, self.status, self.action = reservation_id, status, action


class IdempotencyConflict(InventoryError):
    """The idempotency key was already used for a different request (409)."""


class OnHandBelowCommitted(InventoryError):
    """A stock change would put on-hand below what is held and sold (409): ``available + held + sold ==
    on_hand`` could no longer hold."""

    def __init__(self, sku: str, on_hand: int, held: int, sold: int) -> None:
        super().__init__(
            f"on_hand of {sku!r} cannot be {on_hand}: {held} held + {sold} sold are already committed,"
            f" so on_hand must be at least {held + sold}"
        )
        self.sku, self.on_hand, self.held, self.sold = sku, on_hand, held, sold


class WarehousesRequired(InventoryError):
    """A bare on-hand total for a SKU kept per warehouse would leave the breakdown stale (409)."""

    def __init__(self, sku: str, warehouses: dict[str, int], on_hand: int) -> None:
        kept = ", ".join(f"{w}: {q}" for w, q in sorted(warehouses.items()))
        super().__init__(
            f"{sku!r} keeps its stock per warehouse ({kept}); to set on_hand to {on_hand}, send"
            ' "warehouses" (on_hand becomes their sum)'
        )
        self.sku, self.warehouses = sku, warehouses


class EngineUnavailable(InventoryError):
    """The engine refuses to decide (Redis lost and not yet rebuilt, database down): 503, retry."""


class WindowExceeded(InventoryError):
    """A rate-limit window counted with the reservation (``ReserveRequest.windows``) is full; the API
    answers it as the rate limit it stands for (429)."""

    def __init__(self, window: LimitWindow, reset_at: float) -> None:
        super().__init__(f"rate limit window {window.key!r} is full until {reset_at:.3f}")
        self.window, self.reset_at = window, reset_at


# Values ------------------------------------------------------------------------------------


class StockLevel(msgspec.Struct, frozen=True, kw_only=True):
    sku: str
    on_hand: int = 0
    held: int = 0
    sold: int = 0
    per_customer_limit: int | None = None
    revision: int = 0
    warehouses: dict[str, int] | None = None

    @property
    def available(self) -> int:
        return max(0, self.on_hand - self.held - self.sold)

    @property
    def in_stock(self) -> bool:
        return self.available > 0


class LimitWindow(NamedTuple):
    """A rate-limit window an engine that can counts in the same atomic step as the reservation (the
    cluster engine, in its reserve script: no round trip of its own). ``key`` is the rate limiter's own
    key in the fast path's Redis, so the window is the one the limiter keeps: a fixed window (a counter
    with an expiry) or a moving one (``moving``: one timestamp per unit, as ``limits`` keeps them).
    ``cost`` is what the request counts; at most ``limit`` within ``seconds``; ``name`` says which limit
    it is (the answer to a refusal names it)."""

    name: str
    key: str
    limit: int
    seconds: int
    cost: int
    moving: bool


class ReserveRequest(msgspec.Struct, frozen=True, kw_only=True):
    sku: str
    quantity: int
    customer_id: str
    idempotency_key: str
    hold_seconds: int = DEFAULT_HOLD_SECONDS
    # Counted (in order, stopping at the first full one, which refuses with WindowExceeded) before the
    # stock is looked at, so an ask counts whatever its answer; only for an engine with
    # ``counts_limit_windows`` (the API passes none to the others).
    windows: tuple[LimitWindow, ...] = ()


class Reservation(msgspec.Struct, frozen=True, kw_only=True):
    reservation_id: str
    sku: str
    quantity: int
    customer_id: str
    status: Status
    expires_at: float  # unix seconds
    created_at: float
    idempotency_key: str

    def is_due(self, now: float) -> bool:
        return self.status is Status.HELD and self.expires_at <= now

    def matches(self, request: ReserveRequest) -> bool:
        """Same request again (idempotent retry) rather than a reused key."""
        return (self.sku, self.quantity, self.customer_id) == (
            request.sku,
            request.quantity,
            request.customer_id,
        )


class ReconcileReport(msgspec.Struct, frozen=True, kw_only=True):
    epoch: int
    skus: int
    held_reservations: int
    expired: int = 0
    seconds: float = 0.0


# Validation --------------------------------------------------------------------------------


def validate_identifier(value: object, what: str) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise InvalidRequest(
            f"{what} must be 1-128 printable characters (letters, digits, . _ : / @ + # = -), got {value!r}"
        )
    return value


def validate_sku(value: object) -> str:
    if not isinstance(value, str) or not _SKU_RE.fullmatch(value):
        raise InvalidRequest(
            f"sku must be 1-{MAX_SKU_LENGTH} printable characters (letters, digits, . _ : / @ + # = -),"
            f" got {value!r}"
        )
    return value


def validate_warehouses(value: object) -> dict[str, int] | None:
    """A per-warehouse breakdown ``{warehouse: quantity}`` (None: not given); its sum is the on-hand."""
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise InvalidRequest(f"warehouses must be a non-empty object {{warehouse: quantity}}, got {value!r}")
    for warehouse, quantity in value.items():
        validate_identifier(warehouse, "warehouse")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 <= quantity <= MAX_ON_HAND:
            raise InvalidRequest(f"warehouses[{warehouse!r}] must be an integer between 0 and {MAX_ON_HAND}")
    validate_on_hand(sum(value.values()))
    return dict(value)


def validate_quantity(value: object, *, maximum: int = MAX_QUANTITY, what: str = "quantity") -> int:
    # bool is an int subclass; a JSON true is not a quantity.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{what} must be an integer, got {value!r}")
    if value < 1 or value > maximum:
        raise InvalidRequest(f"{what} must be between 1 and {maximum}, got {value}")
    return value


def validate_on_hand(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ON_HAND:
        raise InvalidRequest(f"on_hand must be an integer between 0 and {MAX_ON_HAND}, got {value!r}")
    return value


def validate_limit(value: object) -> int | None:
    """None keeps the current limit, 0 removes it, N >= 1 caps held + sold per customer."""
    if value is None or value == 0:
        return value
    return validate_quantity(value, maximum=MAX_ON_HAND, what="per_customer_limit")


def validate_set_stock(
    sku: object, on_hand: object, warehouses: object, per_customer_limit: object
) -> dict[str, int] | None:
    """The arguments of ``set_on_hand`` on every engine, checked before any I/O; the warehouses."""
    validate_sku(sku)
    if on_hand is not None:
        validate_on_hand(on_hand)
    checked = validate_warehouses(warehouses)
    validate_limit(per_customer_limit)
    return checked


def validate_reserve(request: ReserveRequest) -> ReserveRequest:
    sku, customer, key, quantity = request.sku, request.customer_id, request.idempotency_key, request.quantity
    if (  # fast path for a valid request; anything else is checked field by field for its message
        type(quantity) is int
        and 1 <= quantity <= MAX_QUANTITY
        and MIN_HOLD_SECONDS <= request.hold_seconds <= MAX_HOLD_SECONDS
        and type(sku) is str
        and type(customer) is str
        and type(key) is str
        and _RESERVE_IDS_RE.fullmatch(f"{sku}\n{customer}\n{key}")
    ):
        return request
    validate_sku(request.sku)
    validate_identifier(request.customer_id, "customer_id")
    validate_identifier(request.idempotency_key, "Idempotency-Key")
    validate_quantity(request.quantity)
    if not MIN_HOLD_SECONDS <= request.hold_seconds <= MAX_HOLD_SECONDS:
        raise InvalidRequest(f"hold_seconds must be between {MIN_HOLD_SECONDS} and {MAX_HOLD_SECONDS}")
    return request


# Decisions ---------------------------------------------------------------------------------


def decide_reserve(stock: StockLevel | None, request: ReserveRequest, customer_has: int) -> StockLevel:
    """Stock after taking the hold, or the refusal. ``customer_has`` = held + sold by this customer."""
    if stock is None:
        raise UnknownSku(request.sku)
    if stock.available < request.quantity:
        raise InsufficientStock(request.sku, request.quantity, stock.available)
    limit = stock.per_customer_limit
    if limit is not None and customer_has + request.quantity > limit:
        raise LimitExceeded(request.sku, limit, customer_has, request.quantity)
    return msgspec.structs.replace(stock, held=stock.held + request.quantity)


def check_on_hand(before: StockLevel | None, sku: str, on_hand: int) -> None:
    """On-hand may never drop below what is held and sold (so available + held + sold == on_hand)."""
    if before is not None and on_hand < before.held + before.sold:
        raise OnHandBelowCommitted(sku, on_hand, before.held, before.sold)


def _next_stock(
    before: StockLevel | None,
    sku: str,
    on_hand: int,
    warehouses: dict[str, int] | None,
    per_customer_limit: int | None = None,
) -> StockLevel:
    check_on_hand(before, sku, on_hand)
    base = before or StockLevel(sku=sku)
    limit = base.per_customer_limit
    if per_customer_limit is not None:  # None keeps, 0 removes, N sets
        limit = None if per_customer_limit == 0 else per_customer_limit
    return msgspec.structs.replace(
        base, sku=sku, on_hand=on_hand, per_customer_limit=limit, warehouses=warehouses
    )


def decide_set_stock(
    before: StockLevel | None,
    sku: str,
    on_hand: int | None,
    *,
    warehouses: dict[str, int] | None = None,
    per_customer_limit: int | None = None,
) -> StockLevel:
    """An admin's stock setting: a total, or a breakdown (on-hand is its sum, and must match a total
    given with it). A bare total for a SKU kept per warehouse must equal the breakdown's sum
    (WarehousesRequired)."""
    if warehouses is not None:
        total = sum(warehouses.values())
        if on_hand is not None and on_hand != total:
            raise InvalidRequest(f"on_hand {on_hand} is not the sum of warehouses ({total}); send either")
        return _next_stock(before, sku, total, warehouses, per_customer_limit)
    if on_hand is None:
        raise InvalidRequest("send on_hand or warehouses")
    kept = before.warehouses if before is not None else None
    if kept is not None and sum(kept.values()) != on_hand:
        raise WarehousesRequired(sku, kept, on_hand)
    return _next_stock(before, sku, on_hand, kept, per_customer_limit)


def decide_feed_stock(before: StockLevel | None, sku: str, warehouses: dict[str, int]) -> StockLevel:
    """A catalog feed's stock: the whole breakdown; on-hand is its sum."""
    return _next_stock(before, sku, validate_on_hand(sum(warehouses.values())), dict(warehouses))


def decide_warehouse_rows(before: StockLevel | None, sku: str, rows: dict[str, int]) -> StockLevel | None:
    """A stock feed's rows of one SKU: those warehouses' quantities, the others kept; on-hand is the sum.
    None when every row names the quantity already kept (an existing SKU that would not change)."""
    kept = before.warehouses if before is not None and before.warehouses is not None else {}
    if before is not None and all(kept.get(w) == q for w, q in rows.items()):
        return None
    merged = {**kept, **rows}
    return _next_stock(before, sku, validate_on_hand(sum(merged.values())), merged)


def decide_confirm(reservation: Reservation, now: float) -> Status:
    """The status the reservation ends in when a confirm arrives at ``now``.

    CONFIRMED for a live hold (or a repeated confirm); EXPIRED when the hold is due but not swept
    yet - the caller records that expiry and answers 409.
    """
    if reservation.status is Status.CONFIRMED:
        return Status.CONFIRMED
    if reservation.status is not Status.HELD:
        raise InvalidTransition(reservation.reservation_id, reservation.status, "confirm")
    return Status.EXPIRED if reservation.is_due(now) else Status.CONFIRMED


def decide_release(reservation: Reservation) -> Status:
    """Releasing is idempotent for holds that already ended without a sale."""
    if reservation.status is Status.CONFIRMED:
        raise InvalidTransition(reservation.reservation_id, reservation.status, "release")
    return reservation.status if reservation.status.terminal else Status.RELEASED


def apply_transition(stock: StockLevel, quantity: int, final: Status) -> StockLevel:
    """Move a held quantity to its end state (held -> sold for confirm, held -> available otherwise)."""
    held = stock.held - quantity
    sold = stock.sold + quantity if final is Status.CONFIRMED else stock.sold
    return msgspec.structs.replace(stock, held=held, sold=sold)


# Stock events -------------------------------------------------------------------------------


def stock_events(
    before: StockLevel | None, after: StockLevel, *, reason: str, low_stock_threshold: int
) -> list[Payload]:
    """What the inventory topic hears about a movement.

    A StockLevelChanged for every on-hand change and every zero crossing (out of stock / back in
    stock); a RestockAlert when available falls to or below the threshold from above it. Plain
    reservations that leave an item in stock publish nothing, so a flash sale does not flood the log.
    """
    events: list[Payload] = []
    available = after.available
    before_available = before.available if before is not None else None
    was_in_stock = before_available is not None and before_available > 0
    if before is None or before.on_hand != after.on_hand or was_in_stock != (available > 0):
        events.append(
            StockLevelChanged(
                sku=after.sku,
                on_hand=after.on_hand,
                held=after.held,
                sold=after.sold,
                available=available,
                in_stock=available > 0,
                reason=reason,
            )
        )
    if available <= low_stock_threshold and (
        before_available is None or before_available > low_stock_threshold
    ):
        if after.on_hand > 0 or before is not None:
            events.append(RestockAlert(sku=after.sku, available=available, threshold=low_stock_threshold))
    return events


# Identifiers ---------------------------------------------------------------------------------


def new_reservation_id(now: float | None = None) -> str:
    """Time-ordered 32 hex chars (48-bit ms clock + 80 random bits): B-tree friendly, unguessable."""
    ms = int((time.time() if now is None else now) * 1000)
    return f"{ms:012x}{os.urandom(10).hex()}"
