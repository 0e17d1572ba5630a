"""Fingerprints, change plans and API keys (pure)."""

from __future__ import annotations

from decimal import Decimal

from ingest.auth import hash_secret, new_api_key, parse_api_key, verify_secret
from ingest.model import ProductState, fingerprint, plan_removals, plan_upserts
from kernel.contracts.events import Product, ProductRemoved, ProductUpserted


def make(pid: str = "s:1", price: str = "1.00", **kw) -> Product:
    return Product(product_id=pid, supplier_id="s", sku=pid, title="t", price=Decimal(price), **kw)


def test_fingerprint_is_content_based_and_order_independent() -> None:
    a = make(attributes={"a": "1", "b": "2"}, stock={"x": 1, "y": 2})
    b = make(attributes={"b": "2", "a": "1"}, stock={"y": 2, "x": 1})
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(
        make(price="1.01", attributes={"a": "1", "b": "2"}, stock={"x": 1, "y": 2})
    )
    assert len(fingerprint(a)) == 16


def test_plan_upserts_new_unchanged_changed_and_readded() -> None:
    new, same, changed, back = make("s:1"), make("s:2"), make("s:3", "2"), make("s:4")
    known = {
        "s:2": ProductState("s:2", "s:2", fingerprint(same), 5),
        "s:3": ProductState("s:3", "s:3", fingerprint(make("s:3")), 2),
        "s:4": ProductState("s:4", "s:4", None, 7, removed=True),
    }
    plan = plan_upserts([(p, fingerprint(p)) for p in (new, same, changed, back)], known)
    assert plan.unchanged == 1
    assert [(e.key, e.revision, type(e.payload)) for e in plan.events] == [
        ("s:1", 1, ProductUpserted),
        ("s:3", 3, ProductUpserted),
        ("s:4", 8, ProductUpserted),
    ]
    assert [(s.product_id, s.revision, s.removed) for s in plan.states] == [
        ("s:1", 1, False),
        ("s:3", 3, False),
        ("s:4", 8, False),
    ]


def test_plan_removals_only_for_live_products_not_seen() -> None:
    live = [ProductState("s:1", "a", b"x", 1), ProductState("s:2", "b", b"y", 4)]
    plan = plan_removals("s", live, {"s:1"})
    assert [(e.key, e.revision) for e in plan.events] == [("s:2", 5)]
    assert isinstance(plan.events[0].payload, ProductRemoved) and plan.events[0].payload.sku == "s:b"
    assert plan.states[0].removed and plan.states[0].fingerprint is None


def test_api_keys_round_trip_and_reject_tampering() -> None:
    key = new_api_key()
    parsed = parse_api_key(key.token)
    assert parsed == key
    stored = hash_secret(key.secret)
    assert key.secret not in stored and verify_secret(key.secret, stored)
    assert not verify_secret(key.secret + "x", stored)
    assert not verify_secret(key.secret, "garbage")
    assert parse_api_key("nope") is None and parse_api_key("emp_short_x") is None
