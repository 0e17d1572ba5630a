"""One contract suite for the commerce store port, run against SQLite (embedded) and MySQL/MariaDB (the
local stack, ``-m cluster``): prices keep the newest revision, cart lines are rows (concurrent edits
never lose one), a merge is one transaction and idempotent, a cart has one active checkout, a confirm
writes its events with it, exactly once."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymysql
import pytest
from inventory_support import drop_mysql_database, mysql_target, mysql_url_with_database, unique_name

from commerce.domain import (
    MAX_LINES,
    STALE_PENDING_S,
    CartFull,
    CartState,
    Checkout,
    CheckoutLine,
    CheckoutStatus,
    HeldStock,
    Price,
    new_id,
)
from commerce.mysql import MysqlCommerceStore
from commerce.port import CommerceStore, OutboxMessage, PriceUpdate
from commerce.sql_dialect import MYSQL
from commerce.sqlite import SqliteCommerceStore


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.cluster)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CommerceStore]:
    if request.param == "sqlite":
        adapter: Any = SqliteCommerceStore(tmp_path / "commerce.db")
        await adapter.start()
        try:
            yield adapter
        finally:
            await adapter.close()
        return
    url = mysql_url_with_database(request.getfixturevalue("mysql_url"), unique_name("commerce_contract"))
    adapter = MysqlCommerceStore(mysql_target(url), pool_size=8)
    await adapter.start()
    try:
        yield adapter
    finally:
        await adapter.close()
        drop_mysql_database(url)


def price(sku: str, amount: str, revision: int = 1) -> Price:
    return Price(sku=sku, product_id=f"p-{sku}", price=Decimal(amount), title=f"T {sku}", revision=revision)


def update(sku: str, amount: str | None, revision: int) -> PriceUpdate:
    return PriceUpdate(sku, f"p-{sku}", None if amount is None else price(sku, amount, revision), revision)


def checkout(customer: str, key: str, skus: tuple[str, ...] = ("s:A",)) -> Checkout:
    lines = tuple(CheckoutLine(sku=s, product_id=f"p-{s}", quantity=1, unit_price=Decimal("2")) for s in skus)
    return Checkout(
        checkout_id=new_id("c"), customer_id=customer, idempotency_key=key, status=CheckoutStatus.PENDING,
        lines=lines, total=Decimal(2 * len(lines)), currency="INR", order_id=new_id("o"), created_at=1.0,
    )  # fmt: skip


async def test_prices_keep_the_newest_revision(store: CommerceStore) -> None:
    assert await store.price_generation() == 0
    await store.put_prices([update("s:A", "10.50", 2)])
    assert await store.price_generation() == 1
    await store.put_prices([update("s:A", "9", 1)])  # stale
    assert await store.price_generation() == 1  # nothing changed: the same generation
    got = await store.get_price("s:A")
    assert got is not None and got.price == Decimal("10.5") and got.product_id == "p-s:A"
    await store.put_prices([update("s:A", None, 3)])  # removed
    assert await store.get_price("s:A") is None
    assert await store.get_price("s:NOPE") is None


async def test_cart_lines_carry_seen_and_current_prices(store: CommerceStore) -> None:
    await store.put_prices([update("s:A", "10", 1), update("s:B", "5", 1)])
    await store.set_line("u1", price("s:A", "10"), 2, 1.0)
    await store.set_line("u1", price("s:B", "5"), 1, 1.0)
    await store.put_prices([update("s:A", "12", 2)])
    lines = {line.sku: line for line in await store.get_cart("u1")}
    assert lines["s:A"].quantity == 2 and lines["s:A"].seen_price == Decimal("10")
    assert lines["s:A"].current is not None and lines["s:A"].current.price == Decimal("12")
    assert lines["s:A"].price_changed and not lines["s:B"].price_changed
    await store.set_line("u1", price("s:A", "12"), 3, 2.0)  # setting it again: the shopper saw 12
    lines = {line.sku: line for line in await store.get_cart("u1")}
    assert (lines["s:A"].quantity, lines["s:A"].price_changed) == (3, False)
    removed = await store.remove_line("u1", "s:B")
    assert [line.sku for line in removed.lines] == ["s:A"]
    again = await store.remove_line("u1", "s:B")  # nothing to remove: the same lines
    assert again.lines == removed.lines and again.version > removed.version
    assert [line.sku for line in await store.get_cart("u1")] == ["s:A"]


async def test_concurrent_edits_of_one_cart_lose_no_line(store: CommerceStore) -> None:
    skus = [f"s:{n}" for n in range(40)]
    await store.put_prices([update(s, "1", 1) for s in skus])
    await asyncio.gather(*(store.set_line("busy", price(s, "1"), 1 + n % 5, 1.0) for n, s in enumerate(skus)))
    assert {line.sku: line.quantity for line in await store.get_cart("busy")} == {
        s: 1 + n % 5 for n, s in enumerate(skus)
    }


async def test_a_cart_has_at_most_max_lines(store: CommerceStore) -> None:
    for n in range(MAX_LINES):
        await store.set_line("full", price(f"s:{n}", "1"), 1, 1.0)
    with pytest.raises(CartFull):
        await store.set_line("full", price("s:extra", "1"), 1, 1.0)
    await store.set_line("full", price("s:0", "1"), 5, 1.0)  # an existing line still changes


async def test_merge_moves_everything_once(store: CommerceStore) -> None:
    await store.set_line("guest", price("s:A", "1"), 2, 1.0)
    await store.set_line("guest", price("s:B", "1"), 1, 1.0)
    await store.set_line("me", price("s:A", "1"), 1, 1.0)
    moved = await asyncio.gather(*(store.merge("me", "guest", 2.0) for _ in range(6)))
    assert sorted(moved) == [0, 0, 0, 0, 0, 2]
    assert {line.sku: line.quantity for line in await store.get_cart("me")} == {"s:A": 3, "s:B": 1}
    assert await store.get_cart("guest") == []


async def test_wishlist(store: CommerceStore) -> None:
    await store.add_wish("u1", "p1", 1.0)
    await store.add_wish("u1", "p1", 2.0)  # idempotent
    await store.add_wish("u1", "p2", 3.0)
    assert [w.product_id for w in await store.get_wishlist("u1")] == ["p2", "p1"]
    assert await store.remove_wish("u1", "p1")
    assert [w.product_id for w in await store.get_wishlist("u1")] == ["p2"]


async def test_stale_pending_checkouts_are_due(store: CommerceStore) -> None:
    claim = await store.claim(checkout("u9", "k"))  # created_at 1.0, never held
    assert await store.due_checkouts(1.0 + STALE_PENDING_S - 1, 10) == []
    due = await store.due_checkouts(1.0 + STALE_PENDING_S, 10)
    assert [c.checkout_id for c in due] == [claim.checkout.checkout_id]


async def test_one_active_checkout_per_cart(store: CommerceStore) -> None:
    claims = await asyncio.gather(*(store.claim(checkout("u1", f"k{n}")) for n in range(8)))
    assert sum(c.created for c in claims) == 1
    assert len({c.checkout.checkout_id for c in claims}) == 1
    first = claims[0].checkout
    again = await store.claim(checkout("u1", first.idempotency_key))
    assert (again.created, again.checkout.checkout_id) == (False, first.checkout_id)
    assert await store.find_checkout("u1", first.idempotency_key) == first
    ended = await store.end_checkout(first.checkout_id, CheckoutStatus.FAILED, 2.0)
    assert ended.status is CheckoutStatus.FAILED
    fresh = await store.claim(checkout("u1", "k-new"))
    assert fresh.created and fresh.checkout.checkout_id != first.checkout_id


async def test_held_confirm_writes_events_once_and_empties_the_lines(store: CommerceStore) -> None:
    await store.set_line("u2", price("s:A", "2"), 1, 1.0)
    await store.set_line("u2", price("s:Z", "2"), 1, 1.0)  # not checked out: stays
    claim = await store.claim(checkout("u2", "k"))
    held = await store.set_held(
        claim.checkout.checkout_id, HeldStock(reservation_ids=("r1",), expires_at=100.0)
    )
    assert held.status is CheckoutStatus.HELD and held.reservation_ids == ["r1"] and held.expires_at == 100.0
    assert [c.checkout_id for c in await store.due_checkouts(100.0, 10)] == [held.checkout_id]
    assert await store.due_checkouts(99.0, 10) == []
    events = [OutboxMessage("commerce", "order:1", b"e1"), OutboxMessage("activity", "u2", b"e2")]
    confirmed = await asyncio.gather(*(store.confirm(held.checkout_id, "pay", 5.0, events) for _ in range(4)))
    assert {c.status for c in confirmed} == {CheckoutStatus.CONFIRMED}
    assert {c.payment_reference for c in confirmed} == {"pay"}
    outbox = await store.outbox_fetch(100)
    assert [(e.topic, e.key, e.value) for e in outbox] == [
        ("commerce", "order:1", b"e1"),
        ("activity", "u2", b"e2"),
    ]
    await store.outbox_delete([e.id for e in outbox])
    assert await store.outbox_fetch(100) == []
    assert [line.sku for line in await store.get_cart("u2")] == ["s:Z"]
    assert (await store.claim(checkout("u2", "k2"))).created  # the claim was dropped
    released = await store.end_checkout(held.checkout_id, CheckoutStatus.RELEASED, 6.0)
    assert released.status is CheckoutStatus.CONFIRMED  # ended checkouts stay as they are


async def test_put_line_takes_the_current_price_and_answers_the_cart(store: CommerceStore) -> None:
    assert await store.put_line("u3", "s:NOPE", 1, 1.0) is None
    await store.put_prices([update("s:A", "3.25", 1)])
    state = await store.put_line("u3", "s:A", 2, 1.0)
    assert state is not None and [(x.sku, x.quantity, x.seen_price) for x in state.lines] == [
        ("s:A", 2, Decimal("3.25"))
    ]
    assert await store.read_cart("u3") == state


async def test_put_line_refuses_a_line_past_max_lines(store: CommerceStore) -> None:
    skus = [f"s:{n}" for n in range(MAX_LINES + 1)]
    await store.put_prices([update(s, "1", 1) for s in skus])
    for sku in skus[:MAX_LINES]:
        await store.put_line("full", sku, 1, 1.0)
    with pytest.raises(CartFull):
        await store.put_line("full", skus[-1], 1, 1.0)
    state = await store.put_line("full", skus[0], 7, 2.0)  # an existing line still changes
    assert state is not None and len(state.lines) == MAX_LINES and state.lines[0].quantity == 7


async def test_every_change_of_the_lines_bumps_the_cart_version(store: CommerceStore) -> None:
    """What the cart cache relies on: a later change has a larger version, and a state read at a version
    holds every change up to it."""
    assert await store.read_cart("v1") == CartState(version=0, lines=[], prices=0)
    await store.put_prices([update("s:A", "1", 1), update("s:B", "1", 1)])
    assert (await store.read_cart("v1")).prices == await store.price_generation() == 1
    seen = [(await store.read_cart("v1")).version]
    put = await store.put_line("v1", "s:A", 1, 1.0)
    assert put is not None
    seen.append(put.version)
    await store.set_line("v1", price("s:B", "1"), 1, 1.0)
    seen.append((await store.read_cart("v1")).version)
    seen.append((await store.remove_line("v1", "s:B")).version)
    await store.set_line("guest-v", price("s:B", "1"), 2, 1.0)
    before_guest = (await store.read_cart("guest-v")).version
    assert await store.merge("v1", "guest-v", 2.0) == 1
    merged = await store.read_cart("v1")
    seen.append(merged.version)
    assert (await store.read_cart("guest-v")).version > before_guest
    assert {x.sku: x.quantity for x in merged.lines} == {"s:A": 1, "s:B": 2}
    claim = await store.claim(checkout("v1", "k", ("s:A",)))
    await store.set_held(claim.checkout.checkout_id, HeldStock(reservation_ids=("r",), expires_at=9.0))
    await store.confirm(claim.checkout.checkout_id, "pay", 3.0, [])
    after = await store.read_cart("v1")
    seen.append(after.version)
    assert [x.sku for x in after.lines] == ["s:B"]
    assert seen == sorted(set(seen)), seen


async def test_concurrent_puts_get_distinct_versions_and_ordered_states(store: CommerceStore) -> None:
    skus = [f"s:{n}" for n in range(30)]
    await store.put_prices([update(s, "1", 1) for s in skus])
    states = await asyncio.gather(*(store.put_line("race", s, 1, 1.0) for s in skus))
    ordered = sorted((s for s in states if s is not None), key=lambda s: s.version)
    assert len({s.version for s in ordered}) == len(skus)
    for earlier, later in itertools.pairwise(ordered):  # a later state holds every earlier line
        assert {x.sku for x in earlier.lines} < {x.sku for x in later.lines}
    final = await store.read_cart("race")
    assert final.version == ordered[-1].version and {x.sku for x in final.lines} == set(skus)


async def test_crossed_merges_neither_fail_nor_lose_a_line(store: CommerceStore) -> None:
    """Merges both ways at once (two logins racing): both carts are locked in id order, so they queue
    instead of deadlocking, and every line ends in exactly one cart."""
    skus = [f"s:{n}" for n in range(10)]
    await store.put_prices([update(s, "1", 1) for s in skus])
    for n, sku in enumerate(skus):
        await store.put_line("a" if n < 5 else "b", sku, 1, 1.0)
    await asyncio.gather(*(store.merge(*pair, 2.0) for pair in [("a", "b"), ("b", "a")] * 4))
    a, b = await store.read_cart("a"), await store.read_cart("b")
    assert sorted(x.sku for x in a.lines + b.lines) == skus
    assert {x.quantity for x in a.lines + b.lines} == {1}


@pytest.mark.cluster
async def test_mysql_store_opens_its_pool_before_the_first_request(mysql_url: str) -> None:
    """Connecting costs tens of ms: a server pays it at start-up, not in its first requests."""
    name = unique_name("commerce_pool")
    url = mysql_url_with_database(mysql_url, name)
    adapter = MysqlCommerceStore(mysql_target(url), pool_size=5)
    await adapter.start()
    try:
        probe = pymysql.connect(**mysql_target(url).pymysql_kwargs())
        try:
            with probe.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = %s", (name,))
                ((connected,),) = cur.fetchall()
        finally:
            probe.close()
        assert connected - 1 == 5  # (the probe itself)
    finally:
        await adapter.close()
        drop_mysql_database(url)


@pytest.mark.cluster
async def test_mysql_edits_of_neighbouring_carts_do_not_lock_each_other(mysql_url: str) -> None:
    """A cart edit's room check must not lock the gap before the next cart's lines (under REPEATABLE
    READ it did, and edits of neighbouring carts deadlocked)."""
    url = mysql_url_with_database(mysql_url, unique_name("commerce_gaps"))
    adapter = MysqlCommerceStore(mysql_target(url), pool_size=2)
    await adapter.start()
    first, second = adapter._connect(), adapter._connect()
    try:
        await adapter.put_prices([update(s, "1", 1) for s in ("s:c", "s:m", "s:z")])
        for cart in ("cart-a", "cart-b"):
            await adapter.put_line(cart, "s:m", 1, 1.0)

        def put(conn: Any, cart: str, sku: str) -> None:  # put_line's statements, not committed
            with conn.cursor() as cur:
                cur.execute(MYSQL.sql(MYSQL.bump_cart), (cart,))
                cur.execute(MYSQL.sql(MYSQL.put_line_if_room), (cart, 1, 2.0, sku, cart, cart, sku))

        put(first, "cart-a", "s:z")  # last line of cart-a: the gap before cart-b's first line
        with second.cursor() as cur:
            cur.execute("SET SESSION innodb_lock_wait_timeout = 1")
        put(second, "cart-b", "s:c")  # first line of cart-b: the same gap (waited, then 1205, before)
        first.commit()
        second.commit()
        assert [line.sku for line in await adapter.get_cart("cart-a")] == ["s:m", "s:z"]
        assert [line.sku for line in await adapter.get_cart("cart-b")] == ["s:c", "s:m"]
    finally:
        first.close()
        second.close()
        await adapter.close()
        drop_mysql_database(url)
