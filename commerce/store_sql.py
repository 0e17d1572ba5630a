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

from commerce.domain import (
    MAX_LINES,
    MAX_QUANTITY,
    CartFull,
    CartLine,
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

_PRICE_AND_COUNT = (
    "SELECT p.product_id, p.price,"
    " (SELECT COUNT(*) FROM commerce_cart_lines WHERE cart_id = ?),"
    " (SELECT COUNT(*) FROM commerce_cart_lines WHERE cart_id = ? AND sku = ?)"
    " FROM commerce_prices p WHERE p.sku = ?"
)


class Dialect:
    """SQLite's spelling; ``MYSQL`` overrides what differs."""

    name = "sqlite"
    placeholder = "?"
    for_update = ""
    insert_ignore = "INSERT OR IGNORE"
    upsert_price = (
        "INSERT INTO commerce_prices (sku, product_id, price, currency, title, revision)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sku) DO UPDATE SET product_id = excluded.product_id,"
        " price = excluded.price, currency = excluded.currency, title = excluded.title,"
        " revision = excluded.revision WHERE excluded.revision > commerce_prices.revision"
    )
    upsert_line = (
        "INSERT INTO commerce_cart_lines (cart_id, sku, product_id, quantity, seen_price, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (cart_id, sku) DO UPDATE SET"
        " product_id = excluded.product_id, quantity = excluded.quantity,"
        " seen_price = excluded.seen_price, updated_at = excluded.updated_at"
    )
    merge_line = (
        "INSERT INTO commerce_cart_lines (cart_id, sku, product_id, quantity, seen_price, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (cart_id, sku) DO UPDATE SET"
        f" quantity = MIN({MAX_QUANTITY}, commerce_cart_lines.quantity + excluded.quantity),"
        " updated_at = excluded.updated_at"
    )

    def sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def money(self, value: Decimal) -> Any:
        return str(value)


class MysqlDialect(Dialect):
    name = "mysql"
    placeholder = "%s"
    for_update = " FOR UPDATE"
    insert_ignore = "INSERT IGNORE"
    upsert_price = (
        "INSERT INTO commerce_prices (sku, product_id, price, currency, title, revision)"
        " VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE"
        " product_id = IF(VALUES(revision) > revision, VALUES(product_id), product_id),"
        " price = IF(VALUES(revision) > revision, VALUES(price), price),"
        " currency = IF(VALUES(revision) > revision, VALUES(currency), currency),"
        " title = IF(VALUES(revision) > revision, VALUES(title), title),"
        " revision = GREATEST(revision, VALUES(revision))"
    )
    upsert_line = (
        "INSERT INTO commerce_cart_lines (cart_id, sku, product_id, quantity, seen_price, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE product_id = VALUES(product_id),"
        " quantity = VALUES(quantity), seen_price = VALUES(seen_price), updated_at = VALUES(updated_at)"
    )
    merge_line = (
        "INSERT INTO commerce_cart_lines (cart_id, sku, product_id, quantity, seen_price, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE"
        f" quantity = LEAST({MAX_QUANTITY}, quantity + VALUES(quantity)), updated_at = VALUES(updated_at)"
    )

    def money(self, value: Decimal) -> Any:
        return value


SQLITE, MYSQL = Dialect(), MysqlDialect()


def _rows(conn: Any, d: Dialect, text: str, params: Sequence[Any] = ()) -> list[Any]:
    cur = conn.cursor()
    try:
        cur.execute(d.sql(text), tuple(params))
        return list(cur.fetchall()) if cur.description else []
    finally:
        cur.close()


def _exec(conn: Any, d: Dialect, text: str, params: Sequence[Any] = ()) -> int:
    cur = conn.cursor()
    try:
        cur.execute(d.sql(text), tuple(params))
        return int(cur.rowcount)
    finally:
        cur.close()


def _price(row: Sequence[Any]) -> Price | None:
    product_id, price, currency, title, revision = row
    if product_id is None or price is None:
        return None
    return Price(
        sku="", product_id=product_id, price=Decimal(price), currency=currency, title=title, revision=revision
    )


class SqlOps:
    """Every store operation as ``op(conn)``, for the adapter to run in a transaction."""

    def __init__(self, dialect: Dialect) -> None:
        self.d = dialect

    # prices ------------------------------------------------------------------------------------

    def put_prices(self, updates: Sequence[PriceUpdate]) -> Op[int]:
        d = self.d

        def op(conn: Any) -> int:
            changed = 0
            for u in updates:
                p = u.price
                changed += _exec(
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
            return changed

        return op

    def get_price(self, sku: str) -> Op[Price | None]:
        d = self.d

        def op(conn: Any) -> Price | None:
            rows = _rows(
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

        def op(conn: Any) -> list[CartLine]:
            return [
                CartLine(
                    sku=sku,
                    product_id=product_id,
                    quantity=int(quantity),
                    seen_price=Decimal(seen),
                    updated_at=float(updated_at),
                    current=None if (p := _price(rest)) is None else msgspec.structs.replace(p, sku=sku),
                )
                for sku, product_id, quantity, seen, updated_at, *rest in _rows(
                    conn, d, _CART_LINES, (cart_id,)
                )
            ]

        return op

    def set_line(self, cart_id: str, price: Price, quantity: int, now: float) -> Op[None]:
        d = self.d

        def op(conn: Any) -> None:
            ((count, has),) = _rows(
                conn,
                d,
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN sku = ? THEN 1 ELSE 0 END), 0)"
                " FROM commerce_cart_lines WHERE cart_id = ?",
                (price.sku, cart_id),
            )
            if not has and count >= MAX_LINES:
                raise CartFull()
            _exec(
                conn,
                d,
                d.upsert_line,
                (cart_id, price.sku, price.product_id, quantity, d.money(price.price), now),
            )

        return op

    def put_line(self, cart_id: str, sku: str, quantity: int, now: float) -> Op[list[CartLine] | None]:
        """``set_line`` at the SKU's current price, answering the cart after, in one transaction (the price
        and the line count in one statement: a round trip is most of a cart edit's cost)."""
        d, get_cart = self.d, self.get_cart(cart_id)

        def op(conn: Any) -> list[CartLine] | None:
            rows = _rows(conn, d, _PRICE_AND_COUNT, (cart_id, cart_id, sku, sku))
            if not rows or rows[0][1] is None:
                return None
            product_id, amount, count, has = rows[0]
            if not has and count >= MAX_LINES:
                raise CartFull()
            _exec(conn, d, d.upsert_line, (cart_id, sku, product_id, quantity, amount, now))
            return get_cart(conn)

        return op

    def remove_line(self, cart_id: str, sku: str) -> Op[bool]:
        d = self.d
        return lambda conn: (
            _exec(conn, d, "DELETE FROM commerce_cart_lines WHERE cart_id = ? AND sku = ?", (cart_id, sku))
            > 0
        )

    def merge(self, into: str, source: str, now: float) -> Op[int]:
        d = self.d

        def op(conn: Any) -> int:
            lines = _rows(
                conn,
                d,
                "SELECT sku, product_id, quantity, seen_price FROM commerce_cart_lines WHERE cart_id = ?"
                " ORDER BY sku" + d.for_update,
                (source,),
            )
            for sku, product_id, quantity, seen in lines:
                _exec(conn, d, d.merge_line, (into, sku, product_id, int(quantity), seen, now))
            _exec(conn, d, "DELETE FROM commerce_cart_lines WHERE cart_id = ?", (source,))
            return len(lines)

        return op

    # wishlists ---------------------------------------------------------------------------------

    def get_wishlist(self, customer_id: str) -> Op[list[WishlistItem]]:
        d = self.d
        return lambda conn: [
            WishlistItem(product_id, float(added_at))
            for product_id, added_at in _rows(
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
            _exec(
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
            _exec(
                conn,
                d,
                "DELETE FROM commerce_wishlist_items WHERE customer_id = ? AND product_id = ?",
                (customer_id, product_id),
            )
            > 0
        )

    # checkouts ---------------------------------------------------------------------------------

    def _checkout(self, conn: Any, checkout_id: str, lock: bool = False) -> Checkout | None:
        rows = _rows(
            conn,
            self.d,
            "SELECT body FROM commerce_checkouts WHERE checkout_id = ?" + (self.d.for_update if lock else ""),
            (checkout_id,),
        )
        return _decode_checkout(bytes(rows[0][0])) if rows else None

    def _write(self, conn: Any, checkout: Checkout) -> None:
        _exec(
            conn,
            self.d,
            "UPDATE commerce_checkouts SET status = ?, body = ?, expires_at = ? WHERE checkout_id = ?",
            (checkout.status.value, _encode(checkout), checkout.expires_at, checkout.checkout_id),
        )

    def _unclaim(self, conn: Any, checkout: Checkout) -> None:
        _exec(
            conn,
            self.d,
            "UPDATE commerce_carts SET checkout_id = NULL WHERE cart_id = ? AND checkout_id = ?",
            (checkout.customer_id, checkout.checkout_id),
        )

    def claim(self, checkout: Checkout) -> Op[Claim]:
        d = self.d

        def op(conn: Any) -> Claim:
            cart = checkout.customer_id
            _exec(
                conn,
                d,
                f"{d.insert_ignore} INTO commerce_carts (cart_id, checkout_id) VALUES (?, NULL)",
                (cart,),
            )
            ((owner,),) = _rows(
                conn, d, "SELECT checkout_id FROM commerce_carts WHERE cart_id = ?" + d.for_update, (cart,)
            )
            same_key = _rows(
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
            _exec(
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
            _exec(
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
            rows = _rows(
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
            skus = [line.sku for line in checkout.lines]
            marks = ", ".join("?" * len(skus))
            _exec(
                conn,
                d,
                f"DELETE FROM commerce_cart_lines WHERE cart_id = ? AND sku IN ({marks})",
                (checkout.customer_id, *skus),
            )
            for event in events:
                _exec(
                    conn,
                    d,
                    "INSERT INTO commerce_outbox (topic, msg_key, value) VALUES (?, ?, ?)",
                    (event.topic, event.key, event.value),
                )
            return checkout

        return op

    def due_checkouts(self, now: float, limit: int) -> Op[list[Checkout]]:
        d = self.d
        return lambda conn: [
            _decode_checkout(bytes(body))
            for (body,) in _rows(
                conn,
                d,
                "SELECT body FROM commerce_checkouts WHERE status = 'held' AND expires_at <= ?"
                " ORDER BY expires_at LIMIT ?",
                (now, limit),
            )
        ]

    # outbox ------------------------------------------------------------------------------------

    def outbox_fetch(self, limit: int) -> Op[list[OutboxEntry]]:
        d = self.d
        return lambda conn: [
            OutboxEntry(int(i), t, k, bytes(v))
            for i, t, k, v in _rows(
                conn, d, "SELECT id, topic, msg_key, value FROM commerce_outbox ORDER BY id LIMIT ?", (limit,)
            )
        ]

    def outbox_delete(self, ids: Sequence[int]) -> Op[None]:
        d = self.d

        def op(conn: Any) -> None:
            if ids:
                marks = ", ".join("?" * len(ids))
                _exec(conn, d, f"DELETE FROM commerce_outbox WHERE id IN ({marks})", [int(i) for i in ids])

        return op


class SqlCommerceStore:
    """``CommerceStore`` over ``SqlOps``; an adapter supplies ``_run`` (one op, one transaction)."""

    ops: SqlOps

    async def _run(self, op: Op[T]) -> T:
        raise NotImplementedError

    async def put_prices(self, updates: Sequence[PriceUpdate]) -> int:
        return await self._run(self.ops.put_prices(updates)) if updates else 0

    async def get_price(self, sku: str) -> Price | None:
        return await self._run(self.ops.get_price(sku))

    async def get_cart(self, cart_id: str) -> list[CartLine]:
        return await self._run(self.ops.get_cart(cart_id))

    async def set_line(self, cart_id: str, price: Price, quantity: int, now: float) -> None:
        await self._run(self.ops.set_line(cart_id, price, quantity, now))

    async def put_line(self, cart_id: str, sku: str, quantity: int, now: float) -> list[CartLine] | None:
        return await self._run(self.ops.put_line(cart_id, sku, quantity, now))

    async def remove_line(self, cart_id: str, sku: str) -> bool:
        return await self._run(self.ops.remove_line(cart_id, sku))

    async def merge(self, into: str, source: str, now: float) -> int:
        return await self._run(self.ops.merge(into, source, now))

    async def get_wishlist(self, customer_id: str) -> list[WishlistItem]:
        return await self._run(self.ops.get_wishlist(customer_id))

    async def add_wish(self, customer_id: str, product_id: str, now: float) -> None:
        await self._run(self.ops.add_wish(customer_id, product_id, now))

    async def remove_wish(self, customer_id: str, product_id: str) -> bool:
        return await self._run(self.ops.remove_wish(customer_id, product_id))

    async def claim(self, checkout: Checkout) -> Claim:
        return await self._run(self.ops.claim(checkout))

    async def get_checkout(self, checkout_id: str) -> Checkout | None:
        return await self._run(self.ops.get_checkout(checkout_id))

    async def find_checkout(self, customer_id: str, idempotency_key: str) -> Checkout | None:
        return await self._run(self.ops.find_checkout(customer_id, idempotency_key))

    async def set_held(self, checkout_id: str, held: HeldStock) -> Checkout:
        return await self._run(self.ops.set_held(checkout_id, held))

    async def end_checkout(self, checkout_id: str, status: CheckoutStatus, now: float) -> Checkout:
        return await self._run(self.ops.end_checkout(checkout_id, status, now))

    async def confirm(
        self, checkout_id: str, payment_reference: str, now: float, events: Sequence[OutboxMessage]
    ) -> Checkout:
        return await self._run(self.ops.confirm(checkout_id, payment_reference, now, events))

    async def due_checkouts(self, now: float, limit: int) -> list[Checkout]:
        return await self._run(self.ops.due_checkouts(now, limit))

    async def outbox_fetch(self, limit: int) -> list[OutboxEntry]:
        return await self._run(self.ops.outbox_fetch(limit))

    async def outbox_delete(self, ids: Sequence[int]) -> None:
        await self._run(self.ops.outbox_delete(ids))
