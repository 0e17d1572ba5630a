"""Pure domain rules: stock arithmetic, decisions, transitions and stock events (no I/O)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inventory.domain import (
    MAX_QUANTITY,
    InsufficientStock,
    InvalidRequest,
    InvalidTransition,
    LimitExceeded,
    Reservation,
    ReserveRequest,
    Status,
    StockLevel,
    UnknownSku,
    apply_transition,
    decide_confirm,
    decide_release,
    decide_reserve,
    new_reservation_id,
    stock_events,
    validate_identifier,
    validate_limit,
    validate_on_hand,
    validate_quantity,
    validate_reserve,
)
from kernel.contracts.events import RestockAlert, StockLevelChanged


def req(qty: int = 1, customer: str = "c1", sku: str = "S") -> ReserveRequest:
    return ReserveRequest(sku=sku, quantity=qty, customer_id=customer, idempotency_key="k")


def res(status: Status = Status.HELD, expires_at: float = 100.0) -> Reservation:
    return Reservation(
        reservation_id="r1", sku="S", quantity=2, customer_id="c1", status=status,
        expires_at=expires_at, created_at=0.0, idempotency_key="k",
    )  # fmt: skip


def test_available_never_negative() -> None:
    assert StockLevel(sku="S", on_hand=3, held=5, sold=1).available == 0
    assert StockLevel(sku="S", on_hand=10, held=5, sold=1).available == 4


def test_reserve_takes_hold_or_refuses() -> None:
    stock = StockLevel(sku="S", on_hand=5, held=2)
    assert decide_reserve(stock, req(3), 0).held == 5
    with pytest.raises(InsufficientStock) as short:
        decide_reserve(stock, req(4), 0)
    assert short.value.available == 3
    with pytest.raises(UnknownSku):
        decide_reserve(None, req(1), 0)


def test_per_customer_limit_counts_held_and_sold() -> None:
    stock = StockLevel(sku="S", on_hand=100, per_customer_limit=3)
    decide_reserve(stock, req(1), 2)
    with pytest.raises(LimitExceeded) as over:
        decide_reserve(stock, req(2), 2)
    assert (over.value.limit, over.value.already) == (3, 2)


def test_confirm_and_release_rules() -> None:
    assert decide_confirm(res(), now=50) is Status.CONFIRMED
    assert decide_confirm(res(), now=100) is Status.EXPIRED  # due but not yet swept
    assert decide_confirm(res(Status.CONFIRMED), now=500) is Status.CONFIRMED  # repeat
    for ended in (Status.RELEASED, Status.EXPIRED):
        with pytest.raises(InvalidTransition):
            decide_confirm(res(ended), now=0)
        assert decide_release(res(ended)) is ended  # idempotent
    assert decide_release(res()) is Status.RELEASED
    with pytest.raises(InvalidTransition):
        decide_release(res(Status.CONFIRMED))


def test_transitions_move_quantity() -> None:
    stock = StockLevel(sku="S", on_hand=10, held=4, sold=1)
    confirmed = apply_transition(stock, 2, Status.CONFIRMED)
    assert (confirmed.held, confirmed.sold, confirmed.available) == (2, 3, 5)
    released = apply_transition(stock, 2, Status.RELEASED)
    assert (released.held, released.sold, released.available) == (2, 1, 7)


@pytest.mark.parametrize("bad", [0, -1, MAX_QUANTITY + 1, 1.5, True, "1", None, [1]])
def test_invalid_quantities(bad: Any) -> None:
    with pytest.raises(InvalidRequest):
        validate_quantity(bad)


@pytest.mark.parametrize("bad", ["", " x", "a b", "x" * 129, "é", "!lost:1", None, 5])
def test_invalid_identifiers(bad: Any) -> None:
    with pytest.raises(InvalidRequest):
        validate_identifier(bad, "sku")


def test_other_validators() -> None:
    assert validate_on_hand(0) == 0
    for bad in (-1, 1.0, True, 10**12):
        with pytest.raises(InvalidRequest):
            validate_on_hand(bad)
    assert validate_limit(None) is None and validate_limit(0) == 0 and validate_limit(5) == 5
    with pytest.raises(InvalidRequest):
        validate_limit(-2)
    with pytest.raises(InvalidRequest):
        validate_reserve(msgspec.structs.replace(req(), hold_seconds=0))


def test_reservation_ids_are_time_ordered_and_unique() -> None:
    ids = [new_reservation_id(1000.0 + i / 1000) for i in range(1000)]
    assert ids == sorted(ids) and len(set(ids)) == 1000 and all(len(i) == 32 for i in ids)


def test_events_zero_crossings_on_hand_changes_and_low_stock() -> None:
    before = StockLevel(sku="S", on_hand=10, held=3, revision=4)
    # A plain reservation that stays in stock and above the threshold publishes nothing.
    assert (
        stock_events(before, msgspec.structs.replace(before, held=4), reason="reserve", low_stock_threshold=2)
        == []
    )
    out = stock_events(
        before, msgspec.structs.replace(before, held=10), reason="reserve", low_stock_threshold=2
    )
    assert [type(e) for e in out] == [StockLevelChanged, RestockAlert]
    assert isinstance(out[0], StockLevelChanged) and not out[0].in_stock and out[0].available == 0
    back = stock_events(
        msgspec.structs.replace(before, held=10), before, reason="release", low_stock_threshold=2
    )
    assert [type(e) for e in back] == [StockLevelChanged] and back[0].in_stock  # type: ignore[attr-defined]
    restock = stock_events(
        before, msgspec.structs.replace(before, on_hand=20), reason="admin", low_stock_threshold=2
    )
    assert [type(e) for e in restock] == [StockLevelChanged]
    new = stock_events(None, StockLevel(sku="N", on_hand=1), reason="feed", low_stock_threshold=2)
    assert [type(e) for e in new] == [StockLevelChanged, RestockAlert]


class Ledger:
    """A reference model: replay random operations through the pure rules and check invariants."""

    def __init__(self, on_hand: int, limit: int | None) -> None:
        self.stock = StockLevel(sku="S", on_hand=on_hand, per_customer_limit=limit)
        self.holds: dict[int, tuple[str, int, Status]] = {}
        self.per_customer: dict[str, int] = {}


ops = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.integers(1, 5), st.sampled_from(["a", "b", "c"])),
        st.tuples(st.just("confirm"), st.integers(0, 30), st.just("")),
        st.tuples(st.just("release"), st.integers(0, 30), st.just("")),
        st.tuples(st.just("set"), st.integers(0, 40), st.just("")),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(on_hand=st.integers(0, 40), limit=st.one_of(st.none(), st.integers(1, 8)), script=ops)
def test_random_operations_never_oversell(
    on_hand: int, limit: int | None, script: list[tuple[str, int, str]]
) -> None:
    m = Ledger(on_hand, limit)
    for op, n, customer in script:
        if op == "reserve":
            try:
                m.stock = decide_reserve(m.stock, req(n, customer), m.per_customer.get(customer, 0))
            except (InsufficientStock, LimitExceeded):
                continue
            m.holds[len(m.holds)] = (customer, n, Status.HELD)
            m.per_customer[customer] = m.per_customer.get(customer, 0) + n
        elif op in ("confirm", "release") and n in m.holds:
            customer, qty, status = m.holds[n]
            r = msgspec.structs.replace(res(status), quantity=qty)
            try:
                final = decide_confirm(r, now=0) if op == "confirm" else decide_release(r)
            except InvalidTransition:
                continue
            if status is Status.HELD:
                m.stock = apply_transition(m.stock, qty, final)
                if final is not Status.CONFIRMED:
                    m.per_customer[customer] -= qty
            m.holds[n] = (customer, qty, final)
        elif op == "set":
            m.stock = msgspec.structs.replace(m.stock, on_hand=n)
        held = sum(q for _, q, s in m.holds.values() if s is Status.HELD)
        sold = sum(q for _, q, s in m.holds.values() if s is Status.CONFIRMED)
        assert (m.stock.held, m.stock.sold) == (held, sold)
        assert m.stock.available >= 0
        if limit is not None:
            assert all(v <= limit for v in m.per_customer.values())
    if all(op != "set" for op, _, _ in script):
        assert m.stock.held + m.stock.sold <= on_hand  # never oversold
