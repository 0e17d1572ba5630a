"""kill -9 of the embedded server (``emporium serve``) in the middle of concurrent checkouts, twice, then
a restart: no checkout is ever partly held, nothing acknowledged is lost, no unit is oversold.

- every checkout's lines are held (or sold) all together or not at all: the reservations recorded for a
  checkout's hold key number 0 or exactly its lines;
- every checkout answered 201 still exists; every order answered 200 is confirmed, its units sold;
- a checkout left ``pending`` by the kill is finished by a retry with the same Idempotency-Key;
- every SKU keeps ``available + held + sold == on_hand`` and its counters agree with its ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec
import pytest
from chaos_support import embedded_service, wait_until
from inventory_support import audit_sqlite

TOKEN = "checkout-crash-admin"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
SUPPLIER = "cc"
SKUS = [f"{SUPPLIER}:K-{n}" for n in range(6)]
ON_HAND = 60  # per SKU: scarce, the shoppers sell most of it out
ROUNDS = 2


@dataclass
class Acknowledged:
    checkouts: dict[str, str] = field(default_factory=dict)  # idempotency key -> checkout id (201/200)
    orders: dict[str, str] = field(default_factory=dict)  # checkout id -> order id (confirm 200)
    keys: dict[str, str] = field(default_factory=dict)  # idempotency key -> customer
    refused: int = 0


def feed() -> bytes:
    lines = ["sku,title,price,currency,category_path,stock.wh-north"]
    lines += [f"K-{n},Crash thing {n},{n + 1}.25,INR,Home > Decor,{ON_HAND}" for n in range(len(SKUS))]
    return ("\n".join(lines) + "\n").encode()


async def shopper(
    base: str, shop: str, acked: Acknowledged, counter: itertools.count[int], stop: asyncio.Event
) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30, headers={"X-Api-Key": shop}) as client:
        while not stop.is_set():
            i = next(counter)
            customer, key = f"cust-{i}", f"ck-{i}"
            try:
                for k in range(3):
                    r = await client.put(
                        f"/v1/carts/{customer}/items/{SKUS[(i + 2 * k) % len(SKUS)]}",
                        json={"quantity": 1 + k % 2},
                    )
                    assert r.status_code == 200, r.text
                acked.keys[key] = customer
                r = await client.post(
                    "/v1/checkouts", json={"customer_id": customer}, headers={"Idempotency-Key": key}
                )
                if r.status_code == 409:
                    acked.refused += 1
                    continue
                assert r.status_code == 201, r.text
                checkout = r.json()["checkout_id"]
                acked.checkouts[key] = checkout
                if i % 2 == 0:
                    c = await client.post(
                        f"/v1/checkouts/{checkout}/confirm", json={"payment_reference": f"p{i}"}
                    )
                    assert c.status_code == 200, c.text
                    acked.orders[checkout] = c.json()["order_id"]
            except httpx.HTTPError:
                return  # killed


def rows(db: Path, query: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(query, params).fetchall()


def check_no_partial_hold(db: Path) -> dict[str, str]:
    """Every checkout: reservations of its hold key are 0 or all its lines. Returns checkout id -> status."""
    statuses: dict[str, str] = {}
    for checkout_id, status, body in rows(db, "SELECT checkout_id, status, body FROM commerce_checkouts"):
        lines = msgspec.json.decode(bytes(body))["lines"]  # type: ignore[arg-type]
        held = rows(
            db,
            "SELECT sku, quantity, status FROM inv_reservations WHERE idempotency_key LIKE ?",
            (f"co-{checkout_id}#%",),
        )
        assert len(held) in (0, len(lines)), (checkout_id, status, lines, held)
        if held:
            assert sorted((s, q) for s, q, _ in held) == sorted((x["sku"], x["quantity"]) for x in lines)
            assert len({st for _, _, st in held}) == 1, held  # the lines end together
        statuses[str(checkout_id)] = str(status)
    return statuses


async def check_invariants(base: str, db: Path, shop: str, acked: Acknowledged) -> None:
    statuses = check_no_partial_hold(db)
    for key, checkout in acked.checkouts.items():
        assert statuses[checkout] in ("held", "confirmed", "expired", "released"), (key, statuses[checkout])
    for checkout in acked.orders:
        assert statuses[checkout] == "confirmed", checkout
        sold = rows(
            db,
            "SELECT DISTINCT status FROM inv_reservations WHERE idempotency_key LIKE ?",
            (f"co-{checkout}#%",),
        )
        assert sold == [("confirmed",)], (checkout, sold)
    async with httpx.AsyncClient(base_url=base, timeout=30, headers={"X-Api-Key": shop}) as client:
        for checkout_id, customer, key in rows(
            db,
            "SELECT checkout_id, customer_id, idempotency_key FROM commerce_checkouts"
            " WHERE status = 'pending'",
        ):
            r = await client.post(
                "/v1/checkouts", json={"customer_id": customer}, headers={"Idempotency-Key": key}
            )
            assert r.status_code in (200, 409), r.text
            if r.status_code == 200:
                assert r.json()["checkout_id"] == checkout_id and r.json()["status"] == "held", r.text
        for sku in SKUS:
            stock = (await client.get(f"/v1/stock/{sku}")).json()
            assert stock["available"] + stock["held"] + stock["sold"] == stock["on_hand"] == ON_HAND, stock
            assert audit_sqlite(db, sku).consistent
    assert rows(db, "SELECT COUNT(*) FROM commerce_checkouts WHERE status = 'pending'") == [(0,)]
    check_no_partial_hold(db)


@pytest.mark.timeout(900)
async def test_kill_9_mid_checkout_leaves_no_partial_checkout(tmp_path: Path) -> None:
    service, db = embedded_service(tmp_path, TOKEN)
    service.start()
    acked = Acknowledged()
    counter = itertools.count()
    try:
        async with httpx.AsyncClient(base_url=service.base, timeout=60) as client:
            created = await client.post("/v1/suppliers", json={"supplier_id": SUPPLIER}, headers=ADMIN)
            key = created.json()["api_key"]
            storefront = await client.post("/v1/storefronts", json={"storefront_id": "shop"}, headers=ADMIN)
            shop = storefront.json()["api_key"]
            pushed = await client.post(
                f"/v1/suppliers/{SUPPLIER}/feeds",
                content=feed(),
                headers={"X-Api-Key": key, "Content-Type": "text/csv"},
            )
            assert pushed.status_code == 201, pushed.text

            async def ready() -> bool:
                r = await client.put(
                    f"/v1/carts/probe/items/{SKUS[-1]}", json={"quantity": 1}, headers={"X-Api-Key": shop}
                )
                stock = await client.get(f"/v1/stock/{SKUS[-1]}")
                return r.status_code == 200 and stock.status_code == 200

            for _ in range(600):
                if await ready():
                    break
                await asyncio.sleep(0.1)
        for _ in range(ROUNDS):
            before = len(acked.checkouts)
            stop = asyncio.Event()
            buyers = [
                asyncio.create_task(shopper(service.base, shop, acked, counter, stop)) for _ in range(12)
            ]
            await wait_until(lambda: len(acked.checkouts) >= before + 10, 120, "checkouts")  # noqa: B023
            await asyncio.to_thread(service.kill)  # kill -9, mid-checkout
            stop.set()
            await asyncio.gather(*buyers)
            await asyncio.to_thread(service.start)
            await check_invariants(service.base, db, shop, acked)
        assert len(acked.checkouts) >= 20 and acked.orders
        print(
            f"{ROUNDS} kills: {len(acked.checkouts)} checkouts, {len(acked.orders)} orders acknowledged,"
            f" all kept; {acked.refused} refused"
        )
    finally:
        service.kill()
