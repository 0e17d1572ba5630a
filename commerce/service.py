"""The commerce application service: carts, wishlists and checkouts over the store and the stock holds.

Checkout, step by step (each step safe to repeat, so a request killed anywhere leaves no partial state):

1. claim the cart (one transaction): the checkout with the same Idempotency-Key, or the active checkout
   already owning the cart (a concurrent checkout of the same cart waits for it and answers it), or a
   new ``pending`` checkout snapshotting the cart at current prices;
2. hold every line's stock at once through ``StockHolds`` (all or nothing, keyed by the checkout id);
3. record the holds (``held``); a refusal ends the checkout ``failed`` and frees the cart.

A pending checkout whose request died is resumed by the next request naming it (same key) or the cart
(after ``PENDING_RESUME_S``): the hold is asked again with the same key, so the inventory answers the
holds it already made, or makes them now. Confirming sells every hold at once, then records the order
and its events (outbox) in one transaction; a repeated confirm answers the same order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import msgspec
import structlog

from commerce.cart_cache import CachedCart, CartCache
from commerce.domain import (
    MAX_ID_LENGTH,
    PENDING_RESUME_S,
    CartLine,
    CartState,
    Checkout,
    CheckoutBusy,
    CheckoutClosed,
    CheckoutNotFound,
    CheckoutStatus,
    CommerceUnavailable,
    EmptyCart,
    HoldEnded,
    HoldLimitReached,
    InvalidRequest,
    OutOfStock,
    UnknownSku,
    checkout_lines,
    hold_key,
    new_id,
    total_of,
    validate_identifier,
    validate_quantity,
    validate_sku,
)
from commerce.port import CommerceStore, OutboxMessage, StockHolds, WishlistItem
from commerce.views import CartView, cart_view
from kernel.activity import ActivityPublisher
from kernel.contracts.events import (
    AddedToCart,
    OrderLine,
    OrderPlaced,
    Purchased,
    PurchasedItem,
    encode_event,
    new_event,
)

log = structlog.get_logger(__name__)
PRODUCER = "commerce"
CLAIM_WAIT_S = 5.0  # how long a second checkout of the same cart waits for the first one's hold


class Shopper(msgspec.Struct, frozen=True):
    """Who the storefront says is shopping (``X-User-Id``, ``X-Session-Id``), for activity events."""

    user_id: str | None = None
    session_id: str | None = None


class CommerceService:
    def __init__(
        self,
        store: CommerceStore,
        holds: StockHolds,
        *,
        activity: ActivityPublisher | None = None,
        carts: CartCache | None = None,
        clock: Callable[[], float] = time.time,
        default_hold_seconds: int = 600,
    ) -> None:
        self.store, self.holds, self.activity, self.clock = store, holds, activity, clock
        self.carts = carts  # the cart cache (None: every read goes to the store)
        self.default_hold_seconds = default_hold_seconds
        self.on_outbox: Callable[[], None] | None = None  # wakes the outbox relay

    # carts -------------------------------------------------------------------------------------

    async def cart(self, customer_id: str) -> CartView:
        validate_identifier(customer_id, "customer_id")
        return await self._view(customer_id, await self._lines(customer_id))

    async def set_item(self, customer_id: str, sku: str, quantity: object, shopper: Shopper) -> CartView:
        validate_identifier(customer_id, "customer_id")
        validate_sku(sku)
        units = validate_quantity(quantity)
        state = await self.store.put_line(customer_id, sku, units, self.clock())
        if state is None:
            raise UnknownSku(sku)
        await self._write_through(customer_id, state)
        lines = state.lines
        line = next(line for line in lines if line.sku == sku)
        if self.activity is not None:
            user = shopper.user_id or (None if shopper.session_id else customer_id)
            self.activity.emit(
                AddedToCart(
                    product_id=line.product_id, sku=sku, quantity=units, user_id=user,
                    session_id=shopper.session_id, unit_price=line.seen_price,
                ),
                key=user or shopper.session_id or customer_id,
            )  # fmt: skip
        return await self._view(customer_id, lines)

    async def _view(self, customer_id: str, lines: list[CartLine]) -> CartView:
        available = await self.holds.available([line.sku for line in lines]) if lines else {}
        return cart_view(customer_id, lines, available)

    async def remove_item(self, customer_id: str, sku: str) -> CartView:
        validate_identifier(customer_id, "customer_id")
        validate_sku(sku)
        state = await self.store.remove_line(customer_id, sku)
        await self._write_through(customer_id, state)
        return await self._view(customer_id, state.lines)

    async def merge(self, customer_id: str, source: object) -> CartView:
        validate_identifier(customer_id, "customer_id")
        guest = validate_identifier(source, "from")
        if guest == customer_id:
            return await self.cart(customer_id)
        await self.store.merge(customer_id, guest, self.clock())
        if self.carts is not None:  # the guest's cart is empty now
            await self._refresh(guest)
        return await self._view(customer_id, await self._refresh(customer_id))

    # the cart cache (ADR 0010): reads from it, every change of the lines stored through it ------

    async def _lines(self, cart_id: str) -> list[CartLine]:
        """The cached copy when it is at the current price generation, else the store's (then cached).
        A cache that cannot answer sends the read to the store."""
        if self.carts is None:
            return await self.store.get_cart(cart_id)
        try:
            cached, generation = await self.carts.get(cart_id)
        except CommerceUnavailable as exc:
            log.warning("cart cache unavailable: reading the store", error=str(exc))
            return await self.store.get_cart(cart_id)
        if cached is not None and cached.prices >= generation:
            return cached.lines
        state = await self.store.read_cart(cart_id)
        try:
            await self.carts.put(cart_id, _cached(state))
        except CommerceUnavailable as exc:  # only a miss next time
            log.warning("cart cache fill failed", error=str(exc))
        return state.lines

    async def _write_through(self, cart_id: str, state: CartState) -> None:
        """Before an edit is acknowledged, the cache holds its result (or a newer one). If this fails the
        edit is answered 503 (not acknowledged; a retry stores it through); the copy it left behind
        expires with its TTL."""
        if self.carts is not None:
            await self.carts.put(cart_id, _cached(state))

    async def _refresh(self, cart_id: str) -> list[CartLine]:
        """After a change the store made without answering the cart (a merge, a confirmed checkout):
        read it after the change and store it through."""
        state = await self.store.read_cart(cart_id)
        await self._write_through(cart_id, state)
        return state.lines

    # wishlists ---------------------------------------------------------------------------------

    async def wishlist(self, customer_id: str) -> list[WishlistItem]:
        return await self.store.get_wishlist(validate_identifier(customer_id, "customer_id"))

    async def add_wish(self, customer_id: str, product_id: str) -> list[WishlistItem]:
        validate_identifier(customer_id, "customer_id")
        _validate_product_id(product_id)
        await self.store.add_wish(customer_id, product_id, self.clock())
        return await self.store.get_wishlist(customer_id)

    async def remove_wish(self, customer_id: str, product_id: str) -> list[WishlistItem]:
        validate_identifier(customer_id, "customer_id")
        await self.store.remove_wish(customer_id, _validate_product_id(product_id))
        return await self.store.get_wishlist(customer_id)

    # checkouts ---------------------------------------------------------------------------------

    async def checkout(
        self,
        customer_id: object,
        idempotency_key: object,
        *,
        accept_price_changes: bool,
        hold_seconds: int,
        admit: Callable[[str, int], Awaitable[None]] | None = None,
    ) -> tuple[Checkout, bool]:
        """The checkout of the customer's cart and whether this request created it."""
        customer = validate_identifier(customer_id, "customer_id")
        key = validate_identifier(idempotency_key, "Idempotency-Key")
        existing = await self.store.find_checkout(customer, key)
        if existing is not None:
            settled = await self._settle_existing(existing, same_key=True)
            if settled.status is CheckoutStatus.FAILED:  # the same request again: refused again
                raise CheckoutClosed(settled.checkout_id, settled.status, "hold the stock of")
            return settled, False
        lines = await self.store.get_cart(customer)
        if not lines:
            raise EmptyCart(customer)
        snapshot = checkout_lines(lines, accept_price_changes=accept_price_changes)
        if admit is not None:  # the customer's units cap (rate limit), before anything is held
            await admit(customer, sum(line.quantity for line in snapshot))
        now = self.clock()
        candidate = Checkout(
            checkout_id=new_id("c", now), customer_id=customer, idempotency_key=key,
            status=CheckoutStatus.PENDING, lines=snapshot, total=total_of(snapshot),
            currency=_currency(lines), order_id=new_id("o", now), created_at=now, hold_seconds=hold_seconds,
        )  # fmt: skip
        deadline = time.monotonic() + CLAIM_WAIT_S
        while True:
            claim = await self.store.claim(candidate)
            if claim.created:
                return await self._hold(claim.checkout), True
            found = await self._settle_existing(
                claim.checkout, same_key=claim.checkout.idempotency_key == key
            )
            if found.status is not CheckoutStatus.PENDING:
                if found.status.active or found.idempotency_key == key:
                    return found, False
                continue  # it ended meanwhile: the cart is free, claim again
            if time.monotonic() > deadline:
                raise CheckoutBusy("another checkout of this cart is being held; retry shortly")
            await asyncio.sleep(0.01)

    async def _settle_existing(self, checkout: Checkout, *, same_key: bool) -> Checkout:
        """An existing checkout as it stands now: a pending one of the same request (or left behind by a
        dead request) is resumed, a held one past its expiry is ended."""
        now = self.clock()
        if checkout.status is CheckoutStatus.PENDING:
            if same_key or now - checkout.created_at > PENDING_RESUME_S:
                return await self._hold(checkout)
            return await self.store.get_checkout(checkout.checkout_id) or checkout
        if checkout.is_due(now):
            return await self.store.end_checkout(checkout.checkout_id, CheckoutStatus.EXPIRED, now)
        return checkout

    async def _hold(self, checkout: Checkout) -> Checkout:
        try:
            held = await self.holds.hold(
                [(line.sku, line.quantity) for line in checkout.lines],
                customer_id=checkout.customer_id,
                idempotency_key=hold_key(checkout.checkout_id),
                hold_seconds=checkout.hold_seconds,
            )
        except (OutOfStock, HoldLimitReached, UnknownSku):
            await self.store.end_checkout(checkout.checkout_id, CheckoutStatus.FAILED, self.clock())
            raise
        recorded = await self.store.set_held(checkout.checkout_id, held)
        if recorded.status is not CheckoutStatus.HELD:  # released while it was pending
            await self.holds.release(held.reservation_ids)
        return recorded

    async def get_checkout(self, checkout_id: str) -> Checkout:
        checkout = await self.store.get_checkout(_validate_checkout_id(checkout_id))
        if checkout is None:
            raise CheckoutNotFound(checkout_id)
        return checkout

    async def confirm(self, checkout_id: str, payment_reference: object) -> Checkout:
        confirmed = await self._confirm(checkout_id, payment_reference)
        if self.carts is not None:  # the bought lines left the cart (again when repeated: the first
            await self._refresh(confirmed.customer_id)  # answer may have failed before this)
        return confirmed

    async def _confirm(self, checkout_id: str, payment_reference: object) -> Checkout:
        reference = (
            "" if payment_reference is None else validate_identifier(payment_reference, "payment_reference")
        )
        checkout = await self.get_checkout(checkout_id)
        if checkout.status is CheckoutStatus.CONFIRMED:
            return checkout
        if checkout.status is CheckoutStatus.PENDING:
            raise CheckoutBusy("the checkout's stock is still being held; retry shortly")
        if checkout.status is not CheckoutStatus.HELD:
            raise CheckoutClosed(checkout_id, checkout.status, "confirm")
        try:
            await self.holds.confirm(checkout.reservation_ids)
        except HoldEnded:
            ended = await self.store.end_checkout(checkout_id, CheckoutStatus.EXPIRED, self.clock())
            if ended.status is CheckoutStatus.CONFIRMED:
                return ended
            raise CheckoutClosed(checkout_id, ended.status, "confirm") from None
        now = self.clock()
        confirmed = await self.store.confirm(
            checkout_id, reference, now, order_events(checkout, reference, now)
        )
        if confirmed.status is not CheckoutStatus.CONFIRMED:
            raise CheckoutClosed(checkout_id, confirmed.status, "confirm")
        return confirmed

    async def release(self, checkout_id: str) -> Checkout:
        checkout = await self.get_checkout(checkout_id)
        if checkout.status is CheckoutStatus.CONFIRMED:
            raise CheckoutClosed(checkout_id, checkout.status, "release")
        if checkout.status is CheckoutStatus.HELD:
            await self.holds.release(checkout.reservation_ids)
        if checkout.status.active:
            checkout = await self.store.end_checkout(checkout_id, CheckoutStatus.RELEASED, self.clock())
        return checkout

    async def expire_due(self, limit: int = 100) -> int:
        """Held checkouts past their expiry -> expired, their carts freed (the inventory expires the
        holds on its own)."""
        now = self.clock()
        due = await self.store.due_checkouts(now, limit)
        for checkout in due:
            await self.store.end_checkout(checkout.checkout_id, CheckoutStatus.EXPIRED, now)
        return len(due)


def order_events(checkout: Checkout, payment_reference: str, now: float) -> list[OutboxMessage]:
    """OrderPlaced (commerce topic, key ``order:<id>``) and Purchased (activity), for the outbox."""
    placed = OrderPlaced(
        order_id=checkout.order_id,
        checkout_id=checkout.checkout_id,
        customer_id=checkout.customer_id,
        lines=tuple(
            OrderLine(
                sku=x.sku,
                product_id=x.product_id,
                quantity=x.quantity,
                unit_price=x.unit_price,
                title=x.title,
            )
            for x in checkout.lines
        ),
        total=checkout.total,
        currency=checkout.currency,
        payment_reference=payment_reference,
        placed_at=datetime.fromtimestamp(now, UTC),
    )
    purchased = Purchased(
        order_id=checkout.order_id,
        user_id=checkout.customer_id,
        items=tuple(
            PurchasedItem(product_id=x.product_id, sku=x.sku, quantity=x.quantity, unit_price=x.unit_price)
            for x in checkout.lines
        ),
        currency=checkout.currency,
        session_id=checkout.session_id,
    )
    order_key = f"order:{checkout.order_id}"
    return [
        OutboxMessage(
            placed.topic,
            order_key,
            encode_event(new_event(placed, key=order_key, revision=1, producer=PRODUCER)),
        ),
        OutboxMessage(
            purchased.topic,
            checkout.customer_id,
            encode_event(new_event(purchased, key=checkout.customer_id, revision=1, producer=PRODUCER)),
        ),
    ]


def _cached(state: CartState) -> CachedCart:
    return CachedCart(version=state.version, prices=state.prices, lines=state.lines)


def _currency(lines: list[CartLine]) -> str:
    return next((line.current.currency for line in lines if line.current is not None), "INR")


def _validate_product_id(product_id: str) -> str:
    if not product_id or len(product_id) > 2 * MAX_ID_LENGTH or not product_id.isprintable():
        raise InvalidRequest(f"product_id must be 1-256 printable characters, got {product_id!r}")
    return product_id


def _validate_checkout_id(checkout_id: str) -> str:
    if not isinstance(checkout_id, str) or len(checkout_id) != 33 or not checkout_id.startswith("c"):
        raise CheckoutNotFound(checkout_id)
    return checkout_id
