"""The commerce store's logic, once for both SQL dialects: each operation is a function of one DB-API
connection run inside one transaction by the adapter (``sqlite.py``: a single writer thread committing
many operations per transaction; ``mysql.py``: a pool of connections, one transaction per operation).

Statements are written with ``?`` placeholders; the few dialect differences (upserts, locking reads,
``INSERT IGNORE``) are the ``Dialect`` strings below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import msgspec

from commerce import sql_dialect as q
from commerce.domain import (
    MAX_LINES,
    STALE_PENDING_S,
    CartFull,
    CartLine,
    CartState,
    Checkout,
    CheckoutStatus,
    HeldStock,
    Price,
)
from commerce.port import Claim, OutboxMessage, PriceUpdate, WishlistItem
from kernel.eventlog.outbox import OutboxEntry

T = TypeVar("T")
Op = Callable[[Any], T]

_encode = msgspec.json.Encoder(decimal_format="string").encode
_decode_checkout = msgspec.json.Decoder(Checkout).decode

_CART_LINES = (
    "SELECT l.sku, l.product_id, l.quantity, l.seen_price, l.updated_at,"
    " p.product_id, p.price, p.currency, p.title, p.revision"
    " FROM commerce_cart_lines l LEFT JOIN commerce_prices p ON p.sku = l.sku"
    " WHERE l.cart_id = ? ORDER BY l.sku"
)


def _lines(rows: Sequence[Any]) -> list[CartLine]:
    return [
        CartLine(
            sku=sku,
            product_id=product_id,
            quantity=int(quantity),
            seen_price=Decimal(seen),
            updated_at=float(updated_at),
            current=None if (p := _price(rest)) is None else msgspec.structs.replace(p, sku=sku),
        )
        for sku, product_id, quantity, seen, updated_at, *rest in rows
    ]


def _state(stamp: Sequence[Any], lines: Sequence[Any]) -> CartState:
    """From a ``CART_STAMP`` row (version, generation, ...) and ``_CART_LINES`` rows."""
    version, prices = stamp[0][:2]
    return CartState(version=int(version or 0), lines=_lines(lines), prices=int(prices or 0))


def _price(row: Sequence[Any]) -> Price | None:
    product_id, price, currency, title, revision = row
    if product_id is None or price is None:
        return None
    return Price(
        sku="", product_id=product_id, price=Decimal(price), currency=currency, title=title, revision=revision
    )


class SqlOps:
    """Every store operation as ``op(conn)``, for the adapter to run in a transaction."""

    def __init__(self, dialect: q.Dialect) -> None:
        self.d = dialect

    # prices ------------------------------------------------------------------------------------

    def put_prices(self, updates: Sequence[PriceUpdate]) -> Op[int]:
        d = self.d

        def op(conn: Any) -> int:
            changed = 0
            for u in updates:
                p = u.price
                changed += q.execute(
                    conn,
                    d,
                    d.upsert_price,
                    (
                        u.sku,
                        u.product_id,
                        None if p is None else d.money(p.price),
                        "" if p is None else p.currency,
                        "" if p is None else p.title[:500],
                        u.revision,
                    ),
                )
            if changed:  # cached carts show prices (ADR 0010)
                q.execute(conn, d, q.BUMP_PRICE_GENERATION)
            return changed

        return op

    def price_generation(self) -> Op[int]:
        d = self.d
        return lambda conn: int(q.rows(conn, d, q.PRICE_GENERATION)[0][0])

    def get_price(self, sku: str) -> Op[Price | None]:
        d = self.d

        def op(conn: Any) -> Price | None:
            rows = q.rows(
                conn,
                d,
                "SELECT product_id, price, currency, title, revision FROM commerce_prices WHERE sku = ?",
                (sku,),
            )
            price = _price(rows[0]) if rows else None
            return None if price is None else msgspec.structs.replace(price, sku=sku)

        return op

    # carts -------------------------------------------------------------------------------------

    def get_cart(self, cart_id: str) -> Op[list[CartLine]]:
        d = self.d
        return q.EndsWithBatch(lambda conn: _lines(q.batch(conn, d, [(_CART_LINES, (cart_id,))])[0]))

    def read_cart(self, cart_id: str) -> Op[CartState]:
        d = self.d

        def op(conn: Any) -> CartState:
            stamp, lines = q.batch(conn, d, [(q.CART_STAMP, (cart_id,)), (_CART_LINES, (cart_id,))])
            return _state(stamp, lines)

        return q.EndsWithBatch(op)

    def set_line(self, cart_id: str, price: Price, quantity: int, now: float) -> Op[None]:
        d = self.d

        def op(conn: Any) -> None:
            q.execute(conn, d, d.bump_cart, (cart_id,))
            ((count, has),) = q.rows(
                conn,
                d,
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN sku = ? THEN 1 ELSE 0 END), 0)"
                " FROM commerce_cart_lines WHERE cart_id = ?",
                (price.sku, cart_id),
            )
            if not has and count >= MAX_LINES:
                raise CartFull()
            q.execute(
                conn,
                d,
                d.upsert_line,
                (cart_id, price.sku, price.product_id, quantity, d.money(price.price), now),
            )

        return op

    def put_line(self, cart_id: str, sku: str, quantity: int, now: float) -> Op[CartState | None]:
        """``set_line`` at the SKU's current price, answering the cart after, in one transaction and, on
        MySQL, one round trip: the version bump (the cart's row lock: edits of one cart queue, so the
        room check is exact), the conditional upsert, then the cart after with its stamp and the price."""
        d = self.d

        def op(conn: Any) -> CartState | None:
            _, _, stamp, lines = q.batch(
                conn,
                d,
                [
                    (d.bump_cart, (cart_id,)),
                    (d.put_line_if_room, (cart_id, quantity, now, sku, cart_id, cart_id, sku)),
                    (q.CART_STAMP_AND_PRICE, (cart_id, sku)),
                    (_CART_LINES, (cart_id,)),
                ],
            )
            if stamp[0][2] is None:
                return None  # unknown SKU: the lines are unchanged (only the version moved)
            state = _state(stamp, lines)
            if all(line.sku != sku for line in state.lines):
                raise CartFull()
            return state

        return q.EndsWithBatch(op)

    def remove_line(self, cart_id: str, sku: str) -> Op[CartState]:
        d = self.d

        def op(conn: Any) -> CartState:
            _, _, stamp, lines = q.batch(
                conn,
                d,
                [
                    (d.bump_cart, (cart_id,)),
                    ("DELETE FROM commerce_cart_lines WHERE cart_id = ? AND sku = ?", (cart_id, sku)),
                    (q.CART_STAMP, (cart_id,)),
                    (_CART_LINES, (cart_id,)),
                ],
            )
            return _state(stamp, lines)

        return q.EndsWithBatch(op)

    def merge(self, into: str, source: str, now: float) -> Op[int]:
        """Set-based, one round trip on MySQL: both carts' rows locked first (in id order, so two merges
        of the same pair cannot deadlock), so a repeated merge finds the source empty."""
        d = self.d
        first, second = sorted((into, source))

        def op(conn: Any) -> int:
            *_, moved = q.batch(
                conn,
                d,
                [
                    (d.bump_cart, (first,)),
                    (d.bump_cart, (second,)),
                    (d.merge_lines, (into, now, source)),
                    ("DELETE FROM commerce_cart_lines WHERE cart_id = ?", (source,)),
                ],
            )
            return int(moved)

        return q.EndsWithBatch(op)

    # wishlists ---------------------------------------------------------------------------------

    def get_wishlist(self, customer_id: str) -> Op[list[WishlistItem]]:
        d = self.d
        return lambda conn: [
            WishlistItem(product_id, float(added_at))
            for product_id, added_at in q.rows(
                conn,
                d,
                "SELECT product_id, added_at FROM commerce_wishlist_items WHERE customer_id = ?"
                " ORDER BY added_at DESC, product_id",
                (customer_id,),
            )
        ]

    def add_wish(self, customer_id: str, product_id: str, now: float) -> Op[None]:
        d = self.d

        def op(conn: Any) -> None:
            q.execute(
                conn,
                d,
                f"{d.insert_ignore} INTO commerce_wishlist_items (customer_id, product_id, added_at)"
                " VALUES (?, ?, ?)",
                (customer_id, product_id, now),
            )

        return op

    def remove_wish(self, customer_id: str, product_id: str) -> Op[bool]:
        d = self.d
        return lambda conn: (
            q.execute(
                conn,
                d,
                "DELETE FROM commerce_wishlist_items WHERE customer_id = ? AND product_id = ?",
                (customer_id, product_id),
            )
            > 0
        )

    # checkouts ---------------------------------------------------------------------------------

    def _checkout(self, conn: Any, checkout_id: str, lock: bool = False) -> Checkout | None:
        rows = q.rows(
            conn,
            self.d,
            "SELECT body FROM commerce_checkouts WHERE checkout_id = ?" + (self.d.for_update if lock else ""),
            (checkout_id,),
        )
        return _decode_checkout(bytes(rows[0][0])) if rows else None

    def _write(self, conn: Any, checkout: Checkout) -> None:
        q.execute(
            conn,
            self.d,
            "UPDATE commerce_checkouts SET status = ?, body = ?, expires_at = ? WHERE checkout_id = ?",
            (checkout.status.value, _encode(checkout), checkout.expires_at, checkout.checkout_id),
        )

    def _unclaim(self, conn: Any, checkout: Checkout) -> None:
        q.execute(
            conn,
            self.d,
            "UPDATE commerce_carts SET checkout_id = NULL WHERE cart_id = ? AND checkout_id = ?",
            (checkout.customer_id, checkout.checkout_id),
        )

    def claim(self, checkout: Checkout) -> Op[Claim]:
        d = self.d

        def op(conn: Any) -> Claim:
            cart = checkout.customer_id
            q.execute(
                conn,
                d,
                f"{d.insert_ignore} INTO commerce_carts (cart_id, checkout_id) VALUES (?, NULL)",
                (cart,),
            )
            ((owner,),) = q.rows(
                conn, d, "SELECT checkout_id FROM commerce_carts WHERE cart_id = ?" + d.for_update, (cart,)
            )
            same_key = q.rows(
                conn,
                d,
                "SELECT checkout_id FROM commerce_checkouts WHERE customer_id = ? AND idempotency_key = ?",
                (cart, checkout.idempotency_key),
            )
            if same_key:
                found = self._checkout(conn, same_key[0][0])
                assert found is not None
                return Claim(found, False)
            current = self._checkout(conn, owner) if owner else None
            if current is not None and current.status.active:
                return Claim(current, False)
            q.execute(
                conn,
                d,
                "INSERT INTO commerce_checkouts (checkout_id, customer_id, idempotency_key, status, body,"
                " expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    checkout.checkout_id,
                    cart,
                    checkout.idempotency_key,
                    checkout.status.value,
                    _encode(checkout),
                    checkout.expires_at,
                    checkout.created_at,
                ),
            )
            q.execute(
                conn,
                d,
                "UPDATE commerce_carts SET checkout_id = ? WHERE cart_id = ?",
                (checkout.checkout_id, cart),
            )
            return Claim(checkout, True)

        return op

    def get_checkout(self, checkout_id: str) -> Op[Checkout | None]:
        return lambda conn: self._checkout(conn, checkout_id)

    def find_checkout(self, customer_id: str, idempotency_key: str) -> Op[Checkout | None]:
        d = self.d

        def op(conn: Any) -> Checkout | None:
            rows = q.rows(
                conn,
                d,
                "SELECT body FROM commerce_checkouts WHERE customer_id = ? AND idempotency_key = ?",
                (customer_id, idempotency_key),
            )
            return _decode_checkout(bytes(rows[0][0])) if rows else None

        return op

    def set_held(self, checkout_id: str, held: HeldStock) -> Op[Checkout]:
        def op(conn: Any) -> Checkout:
            checkout = self._checkout(conn, checkout_id, lock=True)
            assert checkout is not None, checkout_id
            if checkout.status is not CheckoutStatus.PENDING:
                return checkout
            lines = tuple(
                msgspec.structs.replace(line, reservation_id=rid)
                for line, rid in zip(checkout.lines, held.reservation_ids, strict=True)
            )
            checkout = msgspec.structs.replace(
                checkout, status=CheckoutStatus.HELD, lines=lines, expires_at=held.expires_at
            )
            self._write(conn, checkout)
            return checkout

        return op

    def end_checkout(self, checkout_id: str, status: CheckoutStatus, now: float) -> Op[Checkout]:
        def op(conn: Any) -> Checkout:
            checkout = self._checkout(conn, checkout_id, lock=True)
            assert checkout is not None, checkout_id
            if not checkout.status.active:
                return checkout
            checkout = msgspec.structs.replace(checkout, status=status)
            self._write(conn, checkout)
            self._unclaim(conn, checkout)
            return checkout

        return op

    def confirm(
        self, checkout_id: str, payment_reference: str, now: float, events: Sequence[OutboxMessage]
    ) -> Op[Checkout]:
        d = self.d

        def op(conn: Any) -> Checkout:
            checkout = self._checkout(conn, checkout_id, lock=True)
            assert checkout is not None, checkout_id
            if checkout.status is not CheckoutStatus.HELD:
                return checkout
            checkout = msgspec.structs.replace(
                checkout,
                status=CheckoutStatus.CONFIRMED,
                payment_reference=payment_reference,
                confirmed_at=now,
            )
            self._write(conn, checkout)
            self._unclaim(conn, checkout)
            q.execute(conn, d, d.bump_cart, (checkout.customer_id,))  # its lines change
            skus = [line.sku for line in checkout.lines]
            marks = ", ".join("?" * len(skus))
            q.execute(
                conn,
                d,
                f"DELETE FROM commerce_cart_lines WHERE cart_id = ? AND sku IN ({marks})",
                (checkout.customer_id, *skus),
            )
            for event in events:
                q.execute(
                    conn,
                    d,
                    "INSERT INTO commerce_outbox (topic, msg_key, value) VALUES (?, ?, ?)",
                    (event.topic, event.key, event.value),
                )
            return checkout

        return op

    def due_checkouts(self, now: float, limit: int) -> Op[list[Checkout]]:
        d = self.d

        def op(conn: Any) -> list[Checkout]:
            held = q.rows(
                conn,
                d,
                "SELECT body FROM commerce_checkouts WHERE status = 'held' AND expires_at <= ?"
                " ORDER BY expires_at LIMIT ?",
                (now, limit),
            )
            stale = q.rows(  # left pending by a request that died, and never retried
                conn,
                d,
                "SELECT body FROM commerce_checkouts WHERE status = 'pending' AND created_at <= ? LIMIT ?",
                (now - STALE_PENDING_S, limit),
            )
            return [_decode_checkout(bytes(body)) for (body,) in [*held, *stale]]

        return op

    # outbox ------------------------------------------------------------------------------------

    def outbox_fetch(self, limit: int) -> Op[list[OutboxEntry]]:
        d = self.d
        return lambda conn: [
            OutboxEntry(int(i), t, k, bytes(v))
            for i, t, k, v in q.rows(
                conn, d, "SELECT id, topic, msg_key, value FROM commerce_outbox ORDER BY id LIMIT ?", (limit,)
            )
        ]

    def outbox_delete(self, ids: Sequence[int]) -> Op[None]:
        d = self.d

        def op(conn: Any) -> None:
            if ids:
                marks = ", ".join("?" * len(ids))
                q.execute(
                    conn, d, f"DELETE FROM commerce_outbox WHERE id IN ({marks})", [int(i) for i in ids]
                )

        return op
