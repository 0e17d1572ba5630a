"""One contract suite for the orders read model's store, on SQLite and MySQL/MariaDB (``-m cluster``):
newest revision wins, newest first with a cursor that covers every order once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from inventory_support import drop_mysql_database, mysql_target, mysql_url_with_database, unique_name

from read_models.orders.port import Order, OrdersStore, PageCursor
from read_models.orders.sql import MysqlOrdersStore, SqliteOrdersStore


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.cluster)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OrdersStore]:
    url = None
    if request.param == "sqlite":
        adapter: Any = SqliteOrdersStore(tmp_path / "orders.db")
    else:
        url = mysql_url_with_database(request.getfixturevalue("mysql_url"), unique_name("orders_contract"))
        adapter = MysqlOrdersStore(mysql_target(url))
    await adapter.start()
    try:
        yield adapter
    finally:
        await adapter.close()
        if url is not None:
            drop_mysql_database(url)


def order(order_id: str, customer: str, ts: float, revision: int = 1, status: str = "placed") -> Order:
    return Order(
        order_id=order_id, checkout_id="c" + order_id, customer_id=customer, status=status, lines=(),
        total="1", currency="INR", payment_reference="", placed_at="", placed_ts=ts, revision=revision,
    )  # fmt: skip


async def test_newest_revision_wins(store: OrdersStore) -> None:
    await store.put_many([order("o1", "u1", 10.0, revision=2, status="cancelled")])
    await store.put_many([order("o1", "u1", 10.0, revision=1)])
    got = await store.get("o1")
    assert got is not None and (got.status, got.revision) == ("cancelled", 2)
    assert await store.get("nope") is None


async def test_pages_newest_first_cover_everything_once(store: OrdersStore) -> None:
    orders = [order(f"o{n:02d}", "u1", 100.0 + n // 2) for n in range(9)]  # pairs share a timestamp
    await store.put_many([*orders, order("x1", "u2", 500.0)])
    seen: list[str] = []
    after: PageCursor | None = None
    while True:
        page = await store.for_customer("u1", limit=4, after=after)
        seen += [o.order_id for o in page.orders]
        if page.next_cursor is None:
            break
        after = PageCursor.decode(page.next_cursor)
    expected = [o.order_id for o in sorted(orders, key=lambda o: (o.placed_ts, o.order_id), reverse=True)]
    assert seen == expected
    assert (await store.for_customer("nobody", limit=5)).orders == []
