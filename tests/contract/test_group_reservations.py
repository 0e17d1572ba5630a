# ruff: noqa: F811  (test parameters named like the imported fixture "h")
"""The multi-SKU (group) reservation of the engine port, on both engines: a checkout's lines are held,
sold and released all or nothing, never in part, also under concurrency.

Reuses the engine harness of test_inventory_engine.py (SQLite in tmp_path; the cluster engine on the
local stack's Redis + MariaDB, ``-m cluster``)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from inventory_support import unique_name
from test_inventory_engine import Harness, h  # noqa: F401  (the engine fixture, both engines)

from inventory.domain import (
    IdempotencyConflict,
    InsufficientStock,
    InvalidRequest,
    InvalidTransition,
    LimitExceeded,
    Status,
    UnknownSku,
)
from inventory.groups import GroupReserveRequest

SKUS = ("acme:A", "acme:B", "acme:C")


def group(
    lines: dict[str, int], *, key: str | None = None, customer: str = "c1", hold: int = 60
) -> GroupReserveRequest:
    return GroupReserveRequest(
        lines=tuple(lines.items()),
        customer_id=customer,
        idempotency_key=key or unique_name("g"),
        hold_seconds=hold,
    )


async def stock_of(h: Harness) -> dict[str, tuple[int, int, int]]:
    levels = await h.engine.stock_levels(SKUS)
    return {sku: (s.available, s.held, s.sold) for sku, s in levels.items()}


async def setup(h: Harness, on_hand: int = 5) -> None:
    for sku in SKUS:
        await h.engine.set_on_hand(sku, on_hand)


async def test_a_group_holds_every_line(h: Harness) -> None:
    await setup(h)
    held = await h.engine.reserve_many(group({"acme:A": 1, "acme:B": 2, "acme:C": 3}))
    assert [(r.sku, r.quantity, r.status) for r in held] == [
        ("acme:A", 1, Status.HELD), ("acme:B", 2, Status.HELD), ("acme:C", 3, Status.HELD),
    ]  # fmt: skip
    assert len({r.expires_at for r in held}) == 1
    assert await stock_of(h) == {"acme:A": (4, 1, 0), "acme:B": (3, 2, 0), "acme:C": (2, 3, 0)}
    for sku in SKUS:
        assert h.audit(sku).consistent


async def test_one_short_line_holds_nothing(h: Harness) -> None:
    await setup(h)
    with pytest.raises(InsufficientStock) as short:
        await h.engine.reserve_many(group({"acme:A": 1, "acme:B": 6, "acme:C": 1}))
    assert (short.value.sku, short.value.available) == ("acme:B", 5)
    with pytest.raises(UnknownSku):
        await h.engine.reserve_many(group({"acme:A": 1, "acme:NOPE": 1}))
    assert await stock_of(h) == {sku: (5, 0, 0) for sku in SKUS}


async def test_per_customer_limit_refuses_the_group(h: Harness) -> None:
    await setup(h)
    await h.engine.set_on_hand("acme:C", 5, per_customer_limit=2)
    with pytest.raises(LimitExceeded):
        await h.engine.reserve_many(group({"acme:A": 1, "acme:C": 3}))
    assert await stock_of(h) == {sku: (5, 0, 0) for sku in SKUS}


async def test_a_repeated_key_answers_the_same_group(h: Harness) -> None:
    await setup(h)
    first = await h.engine.reserve_many(group({"acme:A": 1, "acme:B": 1}, key="same"))
    again = await h.engine.reserve_many(group({"acme:A": 1, "acme:B": 1}, key="same"))
    assert [r.reservation_id for r in again] == [r.reservation_id for r in first]
    with pytest.raises(IdempotencyConflict):
        await h.engine.reserve_many(group({"acme:A": 2, "acme:B": 1}, key="same"))
    assert await stock_of(h) == {"acme:A": (4, 1, 0), "acme:B": (4, 1, 0), "acme:C": (5, 0, 0)}


async def test_bad_groups_are_refused(h: Harness) -> None:
    with pytest.raises(InvalidRequest):
        await h.engine.reserve_many(group({}))
    with pytest.raises(InvalidRequest):
        await h.engine.reserve_many(
            GroupReserveRequest(lines=(("acme:A", 1), ("acme:A", 1)), customer_id="c", idempotency_key="k")
        )
    with pytest.raises(InvalidRequest):
        await h.engine.reserve_many(group({"acme:A": 0}))


async def test_confirm_sells_every_line_and_repeats_harmlessly(h: Harness) -> None:
    await setup(h)
    held = await h.engine.reserve_many(group({"acme:A": 1, "acme:B": 2}))
    ids = [r.reservation_id for r in held]
    sold = await h.engine.confirm_many(ids)
    assert {r.status for r in sold} == {Status.CONFIRMED}
    assert {r.status for r in await h.engine.confirm_many(ids)} == {Status.CONFIRMED}
    assert await stock_of(h) == {"acme:A": (4, 0, 1), "acme:B": (3, 0, 2), "acme:C": (5, 0, 0)}
    with pytest.raises(InvalidTransition):
        await h.engine.release_many(ids)
    for sku in SKUS:
        assert h.audit(sku).consistent


async def test_a_line_released_alone_fails_the_confirm_and_frees_the_rest(h: Harness) -> None:
    await setup(h)
    held = await h.engine.reserve_many(group({"acme:A": 1, "acme:B": 2}))
    await h.engine.release(held[0].reservation_id)
    with pytest.raises(InvalidTransition):
        await h.engine.confirm_many([r.reservation_id for r in held])
    assert await stock_of(h) == {sku: (5, 0, 0) for sku in SKUS}


async def test_an_expired_group_cannot_be_confirmed(h: Harness) -> None:
    await setup(h)
    held = await h.engine.reserve_many(group({"acme:A": 1, "acme:B": 2}, hold=5))
    h.clock.advance(6)
    with pytest.raises(InvalidTransition) as ended:
        await h.engine.confirm_many([r.reservation_id for r in held])
    assert ended.value.status is Status.EXPIRED
    assert await stock_of(h) == {sku: (5, 0, 0) for sku in SKUS}


async def test_release_gives_every_line_back(h: Harness) -> None:
    await setup(h)
    held = await h.engine.reserve_many(group({"acme:A": 2, "acme:C": 2}))
    released = await h.engine.release_many([r.reservation_id for r in held])
    assert {r.status for r in released} == {Status.RELEASED}
    await h.engine.release_many([r.reservation_id for r in held])  # idempotent
    assert await stock_of(h) == {sku: (5, 0, 0) for sku in SKUS}


async def test_expiry_gives_every_line_back(h: Harness) -> None:
    await setup(h)
    await h.engine.reserve_many(group({"acme:A": 2, "acme:B": 2, "acme:C": 2}, hold=5))
    h.clock.advance(6)
    assert await h.engine.expire_due() == 3
    assert await stock_of(h) == {sku: (5, 0, 0) for sku in SKUS}


async def test_concurrent_overlapping_groups_never_oversell_nor_hold_in_part(h: Harness) -> None:
    """200 groups of 3 overlapping lines race for 50 units per SKU: each group is all or nothing, the
    units held are exactly the granted groups' lines, and no SKU goes below zero."""
    await setup(h, on_hand=50)
    combos = [
        ("acme:A", "acme:B"),
        ("acme:B", "acme:C"),
        ("acme:A", "acme:C"),
        ("acme:A", "acme:B", "acme:C"),
    ]
    requests = [
        group({sku: 1 + i % 2 for sku in combos[i % len(combos)]}, customer=f"c{i}") for i in range(200)
    ]
    results = await asyncio.gather(*(h.engine.reserve_many(r) for r in requests), return_exceptions=True)
    taken: Counter[str] = Counter()
    for request, result in zip(requests, results, strict=True):
        if isinstance(result, BaseException):
            assert isinstance(result, InsufficientStock), result
            continue
        assert [(r.sku, r.quantity) for r in result] == list(request.lines)
        taken.update({sku: q for sku, q in request.lines})
    levels = await h.engine.stock_levels(SKUS)
    for sku in SKUS:
        assert levels[sku].held == taken[sku] <= 50
        assert levels[sku].available == 50 - taken[sku]
        assert h.audit(sku).consistent
