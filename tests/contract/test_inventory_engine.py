"""One contract suite for the reservation-engine port, run against every adapter.

``engine`` is parametrized over the embedded SQLite engine (a file in tmp_path) and the cluster
engine (Redis from ``redis_url`` + MariaDB from ``mysql_url``; never skipped). Each test gets its
own database / Redis key prefix and a controllable clock, so expiry is tested without sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from inventory_support import (
    Audit,
    FakeClock,
    audit_mysql,
    audit_sqlite,
    drop_mysql_database,
    mysql_target,
    mysql_url_with_database,
    unique_name,
)

from inventory.cluster import ClusterEngine
from inventory.domain import (
    EngineUnavailable,
    IdempotencyConflict,
    InsufficientStock,
    InvalidRequest,
    InvalidTransition,
    LimitExceeded,
    OnHandBelowCommitted,
    ReservationNotFound,
    ReserveRequest,
    Status,
    UnknownSku,
    WarehousesRequired,
)
from inventory.feed_stock import FeedStock
from inventory.port import ReservationEngine
from inventory.sqlite import SqliteEngine
from kernel.contracts.events import RestockAlert, StockLevelChanged, decode_event
from kernel.contracts.stock import WarehouseQuantity


class Harness:
    def __init__(self, engine: Any, clock: FakeClock, audit: Callable[[str], Audit]) -> None:
        self.engine: ReservationEngine = engine
        self.raw = engine
        self.clock = clock
        self.audit = audit


@pytest.fixture(params=["sqlite", pytest.param("cluster", marks=pytest.mark.cluster)])
async def h(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    clock = FakeClock()
    if request.param == "sqlite":
        path = tmp_path / "inventory.db"
        engine: Any = SqliteEngine(path, clock=clock, sweep_interval=None)
        await engine.start()
        try:
            yield Harness(engine, clock, lambda sku: audit_sqlite(path, sku))
        finally:
            await engine.close()
        return
    url = mysql_url_with_database(request.getfixturevalue("mysql_url"), unique_name("inv_contract"))
    engine = ClusterEngine(
        request.getfixturevalue("redis_url"), mysql_target(url), prefix=unique_name("invc"), clock=clock,
        sweep_interval=None, lost_grace=1.0,
    )  # fmt: skip
    await engine.start()
    try:
        yield Harness(engine, clock, lambda sku: audit_mysql(url, sku))
    finally:
        await engine.close()
        drop_mysql_database(url)


def req(
    sku: str = "SKU-1", qty: int = 1, customer: str = "c1", key: str | None = None, hold: int = 60
) -> ReserveRequest:
    return ReserveRequest(
        sku=sku,
        quantity=qty,
        customer_id=customer,
        idempotency_key=key or unique_name("k"),
        hold_seconds=hold,
    )


async def test_set_on_hand_creates_and_reads_stock(h: Harness) -> None:
    stock = await h.engine.set_on_hand("SKU-1", 10)
    assert (stock.on_hand, stock.held, stock.sold, stock.available) == (10, 0, 0, 10)
    got = await h.engine.get_stock("SKU-1")
    assert (got.on_hand, got.available) == (10, 10)
    with pytest.raises(UnknownSku):
        await h.engine.get_stock("NOPE")


async def test_reserve_holds_stock_and_short_is_refused_with_available(h: Harness) -> None:
    await h.engine.set_on_hand("SKU-1", 5)
    res = await h.engine.reserve(req(qty=3))
    assert res.status is Status.HELD and res.quantity == 3 and res.sku == "SKU-1"
    assert res.expires_at == pytest.approx(h.clock.now + 60, abs=0.01)
    stock = await h.engine.get_stock("SKU-1")
    assert (stock.held, stock.available) == (3, 2)
    with pytest.raises(InsufficientStock) as short:
        await h.engine.reserve(req(qty=3))
    assert short.value.available == 2
    assert (await h.engine.get_reservation(res.reservation_id)).status is Status.HELD
    assert h.audit("SKU-1").consistent


async def test_unknown_sku_is_refused(h: Harness) -> None:
    with pytest.raises(UnknownSku):
        await h.engine.reserve(req(sku="GHOST"))


@pytest.mark.parametrize("bad", [0, -1, 10**9, 1.5, True, "2", None])
async def test_invalid_quantities_are_refused(h: Harness, bad: Any) -> None:
    await h.engine.set_on_hand("SKU-1", 5)
    with pytest.raises(InvalidRequest):
        await h.engine.reserve(req(qty=bad))
    assert (await h.engine.get_stock("SKU-1")).held == 0


async def test_idempotent_retry_returns_same_reservation_and_takes_stock_once(h: Harness) -> None:
    await h.engine.set_on_hand("SKU-1", 5)
    first = await h.engine.reserve(req(qty=2, key="order-42"))
    again = await h.engine.reserve(req(qty=2, key="order-42"))
    assert again.reservation_id == first.reservation_id
    many = await asyncio.gather(*(h.engine.reserve(req(qty=2, key="order-42")) for _ in range(20)))
    assert {r.reservation_id for r in many} == {first.reservation_id}
    assert (await h.engine.get_stock("SKU-1")).held == 2
    with pytest.raises(IdempotencyConflict):
        await h.engine.reserve(req(qty=1, key="order-42"))
    assert h.audit("SKU-1").consistent


async def test_concurrent_same_key_first_time(h: Harness) -> None:
    await h.engine.set_on_hand("SKU-1", 100)
    many = await asyncio.gather(*(h.engine.reserve(req(qty=1, key="dup")) for _ in range(50)))
    assert len({r.reservation_id for r in many}) == 1
    assert (await h.engine.get_stock("SKU-1")).held == 1


async def test_per_customer_limit(h: Harness) -> None:
    await h.engine.set_on_hand("SKU-1", 100, per_customer_limit=3)
    a = await h.engine.reserve(req(qty=2, customer="alice"))
    with pytest.raises(LimitExceeded) as over:
        await h.engine.reserve(req(qty=2, customer="alice"))
    assert over.value.limit == 3 and over.value.already == 2
    await h.engine.reserve(req(qty=1, customer="alice"))
    await h.engine.reserve(req(qty=3, customer="bob"))
    await h.engine.confirm(a.reservation_id)  # sold units still count
    with pytest.raises(LimitExceeded):
        await h.engine.reserve(req(qty=1, customer="alice"))
    # Removing the limit (0) lifts it; a released hold frees the customer's quota.
    await h.engine.set_on_hand("SKU-1", 100, per_customer_limit=0)
    await h.engine.reserve(req(qty=5, customer="alice"))
    stock = await h.engine.get_stock("SKU-1")
    assert stock.per_customer_limit is None and stock.held == 1 + 3 + 5 and stock.sold == 2


async def test_limit_released_hold_frees_quota(h: Harness) -> None:
    await h.engine.set_on_hand("SKU-1", 100, per_customer_limit=2)
    r = await h.engine.reserve(req(qty=2, customer="carol"))
    await h.engine.release(r.reservation_id)
    await h.engine.reserve(req(qty=2, customer="carol"))


async def test_limit_introduced_later_counts_earlier_holds_and_sales(h: Harness) -> None:
    """A limit set mid-sale counts what the customer already holds and bought before it existed."""
    await h.engine.set_on_hand("SKU-1", 100)
    bought = await h.engine.reserve(req(qty=2, customer="dave"))
    await h.engine.confirm(bought.reservation_id)
    held = await h.engine.reserve(req(qty=1, customer="dave"))
    await h.engine.set_on_hand("SKU-1", 100, per_customer_limit=4)
    with pytest.raises(LimitExceeded) as over:
        await h.engine.reserve(req(qty=2, customer="dave"))
    assert (over.value.limit, over.value.already) == (4, 3)
    await h.engine.release(held.reservation_id)  # a released hold frees quota under the new limit
    await h.engine.reserve(req(qty=2, customer="dave"))
    # Lifted, used, then set again: the count still includes everything held or sold meanwhile.
    await h.engine.set_on_hand("SKU-1", 100, per_customer_limit=0)
    await h.engine.reserve(req(qty=1, customer="dave"))
    await h.engine.set_on_hand("SKU-1", 100, per_customer_limit=5)
    with pytest.raises(LimitExceeded) as again:
        await h.engine.reserve(req(qty=1, customer="dave"))
    assert again.value.already == 5
    audit = h.audit("SKU-1")
    assert audit.consistent, audit


async def test_confirm_and_release_lifecycle(h: Harness) -> None:
    await h.engine.set_on_hand("SKU-1", 10)
    a = await h.engine.reserve(req(qty=2))
    b = await h.engine.reserve(req(qty=3))
    confirmed = await h.engine.confirm(a.reservation_id)
    assert confirmed.status is Status.CONFIRMED
    assert (await h.engine.confirm(a.reservation_id)).status is Status.CONFIRMED  # repeat is harmless
    with pytest.raises(InvalidTransition):
        await h.engine.release(a.reservation_id)
    released = await h.engine.release(b.reservation_id)
    assert released.status is Status.RELEASED
    assert (await h.engine.release(b.reservation_id)).status is Status.RELEASED  # idempotent
    with pytest.raises(InvalidTransition) as late:
        await h.engine.confirm(b.reservation_id)
    assert late.value.status is Status.RELEASED
    stock = await h.engine.get_stock("SKU-1")
    assert (stock.on_hand, stock.held, stock.sold, stock.available) == (10, 0, 2, 8)
    assert h.audit("SKU-1").consistent


async def test_unknown_reservation(h: Harness) -> None:
    for call in (h.engine.confirm, h.engine.release, h.engine.get_reservation):
        with pytest.raises(ReservationNotFound):
            await call("0" * 32)


async def test_holds_expire_and_stock_returns(h: Harness) -> None:
    await h.engine.set_on_hand("SKU-1", 4)
    short = await h.engine.reserve(req(qty=3, hold=10))
    long = await h.engine.reserve(req(qty=1, hold=100))
    assert (await h.engine.get_stock("SKU-1")).available == 0
    h.clock.advance(11)
    assert await h.engine.expire_due() == 1
    assert (await h.engine.get_reservation(short.reservation_id)).status is Status.EXPIRED
    assert (await h.engine.get_reservation(long.reservation_id)).status is Status.HELD
    assert (await h.engine.get_stock("SKU-1")).available == 3
    with pytest.raises(InvalidTransition) as late:
        await h.engine.confirm(short.reservation_id)
    assert late.value.status is Status.EXPIRED
    again = await h.engine.reserve(req(qty=3))  # the returned stock is sellable again
    assert again.status is Status.HELD
    assert await h.engine.expire_due() == 0
    assert h.audit("SKU-1").consistent


async def test_confirm_after_expiry_without_sweep_is_409_and_returns_stock(h: Harness) -> None:
    await h.engine.set_on_hand("SKU-1", 1)
    res = await h.engine.reserve(req(qty=1, hold=5))
    h.clock.advance(6)
    with pytest.raises(InvalidTransition) as late:
        await h.engine.confirm(res.reservation_id)
    assert late.value.status is Status.EXPIRED
    assert (await h.engine.get_stock("SKU-1")).available == 1
    await h.engine.reserve(req(qty=1))
    assert h.audit("SKU-1").consistent


async def test_on_hand_below_held_plus_sold_is_refused_and_changes_nothing(h: Harness) -> None:
    await h.engine.set_on_hand("SKU-1", 10)
    sold = await h.engine.reserve(req(qty=4))
    await h.engine.confirm(sold.reservation_id)
    held = await h.engine.reserve(req(qty=3))
    with pytest.raises(OnHandBelowCommitted) as below:
        await h.engine.set_on_hand("SKU-1", 6)
    assert (below.value.on_hand, below.value.held, below.value.sold) == (6, 3, 4)
    with pytest.raises(OnHandBelowCommitted):
        await h.engine.adjust_from_feed("SKU-1", {"blr": 2}, feed_revision=1)
    stock = await h.engine.get_stock("SKU-1")
    assert (stock.on_hand, stock.held, stock.sold, stock.available) == (10, 3, 4, 3)
    stock = await h.engine.set_on_hand("SKU-1", 7)  # exactly what is committed: nothing left to sell
    assert stock.available + stock.held + stock.sold == stock.on_hand == 7
    with pytest.raises(InsufficientStock):
        await h.engine.reserve(req(qty=1))
    await h.engine.confirm(held.reservation_id)  # a live hold is still honoured
    assert (await h.engine.get_stock("SKU-1")).sold == 7
    assert h.audit("SKU-1").consistent


async def test_warehouse_breakdown_always_sums_to_on_hand(h: Harness) -> None:
    stock = await h.engine.set_on_hand("SKU-1", 5, warehouses={"blr": 3, "del": 2})
    assert (stock.on_hand, stock.warehouses) == (5, {"blr": 3, "del": 2})
    restocked = await h.engine.set_on_hand("SKU-1", 50, warehouses={"blr": 30, "del": 20})
    assert (restocked.on_hand, restocked.warehouses) == (50, {"blr": 30, "del": 20})
    with pytest.raises(WarehousesRequired):  # a bare total would leave the breakdown stale
        await h.engine.set_on_hand("SKU-1", 80)
    kept = await h.engine.set_on_hand("SKU-1", 50, per_customer_limit=3)  # the same total keeps it
    assert (kept.warehouses, kept.per_customer_limit) == ({"blr": 30, "del": 20}, 3)
    with pytest.raises(InvalidRequest):
        await h.engine.set_on_hand("SKU-1", 7, warehouses={"blr": 1})
    fed = await h.engine.adjust_from_feed("SKU-1", {"blr": 4}, feed_revision=1)
    assert fed is not None and (fed.on_hand, fed.warehouses) == (4, {"blr": 4})
    plain = await h.engine.set_on_hand("SKU-2", 9)
    assert plain.warehouses is None
    assert (await h.engine.get_stock("SKU-1")).warehouses == {"blr": 4}


async def test_warehouse_stock_rows_merge_per_sku_and_say_what_changed(h: Harness) -> None:
    outcome = await h.engine.set_warehouse_stock(
        [
            WarehouseQuantity("s:A", "blr", 4),
            WarehouseQuantity("s:B", "del", 1),
            WarehouseQuantity("s:A", "del", 6),
        ]
    )
    assert (outcome.changed, outcome.unchanged, outcome.refused) == (3, 0, [])
    a = await h.engine.get_stock("s:A")
    assert (a.on_hand, a.warehouses) == (10, {"blr": 4, "del": 6})
    sold = await h.engine.reserve(req(sku="s:A", qty=5))
    await h.engine.confirm(sold.reservation_id)
    outcome = await h.engine.set_warehouse_stock(
        [
            WarehouseQuantity("s:A", "del", 6),  # as it is
            WarehouseQuantity("s:A", "mum", 2),  # a new warehouse: the others keep theirs
            WarehouseQuantity("s:B", "del", 0),
            WarehouseQuantity("s:C", "blr", 0),  # a SKU with no stock yet: recorded, out of stock
        ]
    )
    assert (outcome.changed, outcome.unchanged, outcome.refused) == (3, 1, [])
    a = await h.engine.get_stock("s:A")
    assert (a.on_hand, a.sold, a.available, a.warehouses) == (12, 5, 7, {"blr": 4, "del": 6, "mum": 2})
    assert (await h.engine.get_stock("s:C")).in_stock is False
    outcome = await h.engine.set_warehouse_stock(
        [
            WarehouseQuantity("s:A", "blr", 0),
            WarehouseQuantity("s:A", "del", 0),  # 2 left, 5 sold: refused, the whole SKU
            WarehouseQuantity("s:B", "del", 3),
        ]
    )
    assert (outcome.changed, outcome.unchanged) == (1, 0)
    assert [r.position for r in outcome.refused] == [0, 1] and "sold" in outcome.refused[0].reason
    assert (await h.engine.get_stock("s:A")).on_hand == 12
    assert (await h.engine.get_stock("s:B")).available == 3
    rows = await h.raw.outbox_fetch(1000)
    changes = [decode_event(v).payload for _, _, k, v in rows if k == "s:B"]
    assert [c.on_hand for c in changes if isinstance(c, StockLevelChanged)] == [1, 0, 3]
    assert h.audit("s:A").consistent


async def test_scoped_skus_of_the_longest_supplier_id_and_code_are_keys(h: Harness) -> None:
    sku = "s" * 64 + ":" + "K" * 128
    await h.engine.set_on_hand(sku, 2)
    reservation = await h.engine.reserve(req(sku=sku, qty=2))
    assert reservation.sku == sku and (await h.engine.get_stock(sku)).available == 0


async def test_feed_stock_updates_on_hand_without_disturbing_holds(h: Harness) -> None:
    await h.engine.set_on_hand("SKU-1", 10)
    await h.engine.reserve(req(qty=4))
    after = await h.engine.adjust_from_feed("SKU-1", {"blr": 7, "del": 5}, feed_revision=3)
    assert after is not None
    assert (after.on_hand, after.held, after.available, after.warehouses) == (12, 4, 8, {"blr": 7, "del": 5})
    assert await h.engine.adjust_from_feed("SKU-1", {"blr": 1}, feed_revision=2) is None  # stale
    assert await h.engine.adjust_from_feed("SKU-1", {"blr": 1}, feed_revision=3) is None  # repeated
    stock = await h.engine.get_stock("SKU-1")
    assert (stock.on_hand, stock.held) == (12, 4)
    new = await h.engine.adjust_from_feed("SKU-NEW", {"blr": 2}, feed_revision=1)
    assert new is not None and new.available == 2
    await h.engine.reserve(req(sku="SKU-NEW", qty=2))
    assert h.audit("SKU-1").consistent


async def test_feed_stock_in_batches_takes_the_newest_revision_and_skips_what_is_kept(h: Harness) -> None:
    """The feed consumer's call: one batch, each SKU decided on its own; unchanged stock writes nothing."""
    await h.engine.set_on_hand("SKU-1", 10)
    await h.engine.reserve(req(qty=4))
    await h.engine.adjust_from_feed("SKU-2", {"blr": 3}, feed_revision=5)
    before = await h.engine.get_stock("SKU-2")
    outcome = await h.engine.adjust_many_from_feed(
        [
            FeedStock("SKU-1", {"blr": 9}, 1),
            FeedStock("SKU-1", {"blr": 7, "del": 5}, 2),  # the newest revision of SKU-1 wins
            FeedStock("SKU-2", {"blr": 3}, 6),  # exactly the stock kept: nothing written
            FeedStock("SKU-3", {"blr": 2}, 1),
            FeedStock("SKU-4", {"blr": 1}, 1),
            FeedStock("bad sku", {"blr": 1}, 1),  # refused alone
        ]
    )
    assert outcome.applied == 3 and list(outcome.rejected) == ["bad sku"]
    stock = await h.engine.get_stock("SKU-1")
    assert (stock.on_hand, stock.held, stock.warehouses) == (12, 4, {"blr": 7, "del": 5})
    assert (await h.engine.get_stock("SKU-2")).revision == before.revision
    assert (await h.engine.get_stock("SKU-3")).available == 2
    stale = await h.engine.adjust_many_from_feed(
        [FeedStock("SKU-1", {"blr": 1}, 2), FeedStock("SKU-3", {}, 1)]
    )
    assert stale.applied == 0 and not stale.rejected
    below = await h.engine.adjust_many_from_feed(
        [FeedStock("SKU-1", {"blr": 1}, 3), FeedStock("SKU-4", {}, 2)]
    )
    assert below.applied == 1 and list(below.rejected) == ["SKU-1"]  # on-hand below the hold
    assert (await h.engine.get_stock("SKU-1")).on_hand == 12
    assert (await h.engine.get_stock("SKU-4")).on_hand == 0
    assert h.audit("SKU-1").consistent


async def test_concurrent_reservations_never_oversell(h: Harness) -> None:
    await h.engine.set_on_hand("HOT", 300)

    async def attempt(i: int) -> bool:
        try:
            await h.engine.reserve(req(sku="HOT", qty=1 + i % 2, customer=f"c{i}"))
            return True
        except InsufficientStock:
            return False

    results = await asyncio.gather(*(attempt(i) for i in range(1500)))
    stock = await h.engine.get_stock("HOT")
    assert stock.held <= 300 and stock.available == 300 - stock.held
    assert stock.held >= 299  # everything sellable was sold (a last unit may not fit a 2-unit request)
    assert sum(results) > 0
    audit = h.audit("HOT")
    assert audit.consistent and audit.held == stock.held


async def test_stock_events_on_zero_crossings_on_hand_changes_and_low_stock(h: Harness) -> None:
    await h.engine.set_on_hand("EVT", 7)  # on-hand change (in stock) + nothing low yet
    r1 = await h.engine.reserve(req(sku="EVT", qty=2))  # 7 -> 5: low-stock alert, no zero crossing
    await h.engine.reserve(req(sku="EVT", qty=5))  # 5 -> 0: out of stock
    await h.engine.release(r1.reservation_id)  # 0 -> 2: back in stock
    await asyncio.sleep(0)
    rows = await h.raw.outbox_fetch(100)
    events = [decode_event(v) for _, _, k, v in rows if k == "EVT"]
    changes = [e for e in events if isinstance(e.payload, StockLevelChanged)]
    alerts = [e for e in events if isinstance(e.payload, RestockAlert)]
    assert [(e.payload.in_stock, e.payload.available, e.payload.reason) for e in changes] == [
        (True, 7, "admin"),
        (False, 0, "reserve"),
        (True, 2, "released"),
    ]
    assert [e.payload.available for e in alerts] == [5]
    revisions = [e.revision for e in changes]
    assert revisions == sorted(revisions) and len(set(revisions)) == 3
    assert all(e.key == "EVT" and e.producer == "inventory" for e in events)
    await h.raw.outbox_delete([i for i, *_ in rows])
    assert await h.raw.outbox_fetch(100) == []


async def test_reconcile_keeps_every_count(h: Harness) -> None:
    await h.engine.set_on_hand("SKU-1", 10, per_customer_limit=4)
    a = await h.engine.reserve(req(qty=2, customer="dan"))
    await h.engine.reserve(req(qty=1, customer="dan", key="keep-me"))
    await h.engine.confirm(a.reservation_id)
    report = await h.engine.reconcile()
    assert report.skus >= 1
    stock = await h.engine.get_stock("SKU-1")
    assert (stock.on_hand, stock.held, stock.sold) == (10, 1, 2)
    with pytest.raises(LimitExceeded):  # the customer's count survived the rebuild
        await h.engine.reserve(req(qty=2, customer="dan"))
    again = await h.engine.reserve(req(qty=1, customer="dan", key="keep-me"))  # idempotency survived
    assert again.status is Status.HELD
    assert (await h.engine.get_stock("SKU-1")).held == 1
    with pytest.raises(InsufficientStock):
        await h.engine.reserve(req(qty=8, customer="eve"))
    await h.engine.ping()


async def test_invalid_identifiers_are_refused(h: Harness) -> None:
    with pytest.raises(InvalidRequest):
        await h.engine.set_on_hand("bad sku with spaces", 1)
    with pytest.raises(InvalidRequest):
        await h.engine.set_on_hand("SKU-1", -5)
    with pytest.raises(InvalidRequest):
        await h.engine.reserve(req(customer=""))


async def test_closed_engine_refuses_with_unavailable(tmp_path: Path) -> None:
    engine = SqliteEngine(tmp_path / "x.db", sweep_interval=None)
    with pytest.raises(EngineUnavailable):
        await engine.reserve(req())


async def test_identifiers_are_case_sensitive(h: Harness) -> None:
    await h.engine.set_on_hand("case-sku", 1)
    await h.engine.set_on_hand("CASE-SKU", 2)
    assert (await h.engine.get_stock("case-sku")).on_hand == 1
    first = await h.engine.reserve(req(sku="case-sku", key="Key-1"))
    second = await h.engine.reserve(req(sku="CASE-SKU", key="key-1"))  # a different key, not a retry
    assert first.reservation_id != second.reservation_id
    assert (await h.engine.get_stock("CASE-SKU")).held == 1
