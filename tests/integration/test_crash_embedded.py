"""kill -9 of the embedded server (``emporium serve`` on SQLite and Tantivy) in the middle of a feed
import and of a flash sale, twice, then a restart: every invariant still holds.

- no import is left ``processing`` and the supplier can push its next feed at once (no 409);
- nothing acknowledged is lost: every reservation answered 201 is still there, every confirmation
  answered 200 is confirmed;
- every SKU has ``available + held + sold == on_hand``, no more held and sold than on hand, and its
  counters agree with the ledger and the reservations (``audit_sqlite``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from chaos_support import embedded_service, wait_until
from inventory_support import audit_sqlite

TOKEN = "crash-test-admin"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
SUPPLIER = "crash"
# Supplier-scoped SKUs (PUT /v1/stock takes only those); FLASH-0 sells out.
ON_HAND = {
    f"{SUPPLIER}:FLASH-0": 40,
    f"{SUPPLIER}:FLASH-1": 400,
    f"{SUPPLIER}:FLASH-2": 400,
    f"{SUPPLIER}:FLASH-3": 400,
}
SKUS = list(ON_HAND)
FEED_ROWS = 60_000
ROUNDS = 2


@dataclass
class Acknowledged:
    """What the server answered before it was killed: reservation id -> (sku, quantity); confirmed ids."""

    reserved: dict[str, tuple[str, int]] = field(default_factory=dict)
    confirmed: set[str] = field(default_factory=set)
    refused: int = 0


def feed(rows: int, round_: int) -> bytes:
    lines = ["sku,title,price,currency,category_path,stock.wh-north"]
    lines += [f"R{round_}-{i},Crash item {i},{i % 90 + 1}.50,INR,Home > Decor,{i % 7}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def reports(db: Path) -> list[tuple[str, str]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(
            "SELECT feed_id, status FROM ingest_feeds WHERE supplier_id = ?", (SUPPLIER,)
        ).fetchall()


async def push_feed(base: str, key: str, round_: int) -> None:
    """Push the round's feed; the server is killed while it imports, so no answer is expected."""
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        with contextlib.suppress(httpx.HTTPError):
            await client.post(
                f"/v1/suppliers/{SUPPLIER}/feeds",
                content=feed(FEED_ROWS, round_),
                headers={"X-Api-Key": key, "Content-Type": "text/csv"},
            )


async def flash_sale(
    base: str, shop: str, acked: Acknowledged, counter: itertools.count[int], stop: asyncio.Event
) -> None:
    """Reserve one unit at a time as storefront ``shop`` (its key), confirming every third reservation,
    until stopped or the server dies."""
    async with httpx.AsyncClient(base_url=base, timeout=30, headers={"X-Api-Key": shop}) as client:
        while not stop.is_set():
            i = next(counter)
            sku = SKUS[i % len(SKUS)]
            try:
                r = await client.post(
                    "/v1/reservations",
                    json={"sku": sku, "quantity": 1, "customer_id": f"c-{i}", "hold_seconds": 600},
                    headers={"Idempotency-Key": f"crash-{i}"},
                )
                if r.status_code == 409:
                    acked.refused += 1
                    continue
                assert r.status_code == 201, r.text
                rid = r.json()["reservation_id"]
                acked.reserved[rid] = (sku, 1)
                if i % 3 == 0:
                    c = await client.post(f"/v1/reservations/{rid}/confirm")
                    assert c.status_code == 200, c.text
                    acked.confirmed.add(rid)
            except httpx.HTTPError:
                return  # killed


async def check_invariants(base: str, db: Path, key: str, shop: str, acked: Acknowledged) -> None:
    assert [status for _, status in reports(db) if status == "processing"] == []
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        pushed = await client.post(
            f"/v1/suppliers/{SUPPLIER}/feeds",
            content=feed(3, 99),
            headers={"X-Api-Key": key, "Content-Type": "text/csv"},
        )
        assert pushed.status_code == 201, pushed.text  # no lease left behind: no 409
        per_sku: dict[str, int] = defaultdict(int)
        confirmed_per_sku: dict[str, int] = defaultdict(int)
        for rid, (sku, quantity) in acked.reserved.items():
            r = await client.get(f"/v1/reservations/{rid}", headers={"X-Api-Key": shop})
            assert r.status_code == 200, (rid, r.text)
            body = r.json()
            assert (body["sku"], body["quantity"]) == (sku, quantity)
            assert body["status"] == ("confirmed" if rid in acked.confirmed else body["status"])
            assert body["status"] in ("held", "confirmed"), body
            per_sku[sku] += quantity
            confirmed_per_sku[sku] += quantity if rid in acked.confirmed else 0
        for sku in SKUS:
            stock = (await client.get(f"/v1/stock/{sku}")).json()
            assert stock["available"] + stock["held"] + stock["sold"] == stock["on_hand"] == ON_HAND[sku], (
                stock
            )
            assert stock["available"] >= 0 and stock["held"] + stock["sold"] <= ON_HAND[sku], stock
            assert stock["held"] + stock["sold"] >= per_sku[sku], (sku, stock, per_sku[sku])
            assert stock["sold"] >= confirmed_per_sku[sku], (sku, stock, confirmed_per_sku[sku])
            audit = audit_sqlite(db, sku)
            assert audit.consistent, audit


@pytest.mark.timeout(900)
async def test_kill_9_mid_feed_and_mid_sale_loses_nothing_acknowledged(tmp_path: Path) -> None:
    service, db = embedded_service(tmp_path, TOKEN)
    service.start()
    acked = Acknowledged()
    counter = itertools.count()
    try:
        async with httpx.AsyncClient(base_url=service.base, timeout=60) as client:
            created = await client.post("/v1/suppliers", json={"supplier_id": SUPPLIER}, headers=ADMIN)
            assert created.status_code == 201, created.text
            key = created.json()["api_key"]
            storefront = await client.post("/v1/storefronts", json={"storefront_id": "shop"}, headers=ADMIN)
            assert storefront.status_code == 201, storefront.text
            shop = storefront.json()["api_key"]
            for sku in SKUS:
                r = await client.put(f"/v1/stock/{sku}", json={"on_hand": ON_HAND[sku]}, headers=ADMIN)
                assert r.status_code == 200, r.text
        for round_ in range(ROUNDS):
            before = len(acked.reserved)
            stop = asyncio.Event()
            importing = asyncio.create_task(push_feed(service.base, key, round_))
            buyers = [
                asyncio.create_task(flash_sale(service.base, shop, acked, counter, stop)) for _ in range(16)
            ]
            known = {feed_id for feed_id, _ in reports(db)}
            await wait_until(
                lambda: any(s == "processing" for f, s in reports(db) if f not in known),  # noqa: B023
                60,
                "an import in progress",
            )
            await wait_until(lambda: len(acked.reserved) >= before + 200, 60, "reservations")  # noqa: B023
            await asyncio.to_thread(service.kill)  # kill -9, mid-feed and mid-sale
            stop.set()
            await asyncio.gather(importing, *buyers)
            assert any(s == "processing" for f, s in reports(db) if f not in known)  # really cut mid-import
            await asyncio.to_thread(service.start)
            await check_invariants(service.base, db, key, shop, acked)
        assert len(acked.reserved) >= ROUNDS * 200 and acked.confirmed and acked.refused
        print(
            f"{ROUNDS} kills: {len(acked.reserved)} reservations and {len(acked.confirmed)} confirmations"
            f" acknowledged, all kept; {acked.refused} refused as sold out"
        )
    finally:
        service.kill()
