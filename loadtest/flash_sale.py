"""Locust flash sale: many shoppers race for a few SKUs; at the end, oversell must be 0.

    emporium serve &                                  # or `emporium demo`; admin token in env
    EMPORIUM_ADMIN_TOKEN=secret locust -f loadtest/flash_sale.py --headless -u 500 -r 100 -t 30s \
        --host http://127.0.0.1:8000

Settings (env): FLASH_SKUS (how many SKUs, default 3), FLASH_UNITS (units per SKU, default 1000),
FLASH_LIMIT (per-customer limit, default 0 = none), FLASH_PREFIX (SKU name prefix, default
"FLASH-<random>"), EMPORIUM_ADMIN_TOKEN (to stock the SKUs and register the sale's storefront at test
start; reservations need a storefront key). The server's own storefront rate limit
(EMPORIUM_RATE_LIMIT_STOREFRONT) applies: its 429s count as refusals, like sold-out answers.

Every shopper reserves 1-2 units with an Idempotency-Key (and retries the same key on 503 or a
dropped connection), pays for most reservations and abandons some. At test stop the scenario reads
GET /v1/stock for each SKU and prints units, acknowledged reservations, held + sold, oversell and
throughput; the exit code is 1 if anything was oversold or more reservations were acknowledged than
there were units.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import uuid
from typing import Any

import httpx
from locust import FastHttpUser, between, events, task
from locust.env import Environment

SKUS = int(os.environ.get("FLASH_SKUS", "3"))
UNITS = int(os.environ.get("FLASH_UNITS", "1000"))
LIMIT = int(os.environ.get("FLASH_LIMIT", "0"))
PREFIX = os.environ.get("FLASH_PREFIX", f"FLASH-{uuid.uuid4().hex[:6]}")
SKU_NAMES = [f"flash:{PREFIX}-{i}" for i in range(SKUS)]  # supplier-scoped stock keys
logging.getLogger("httpx").setLevel(logging.WARNING)


class _Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        # units in 201 answers minus units given back (released, or expired before payment)
        self.acknowledged: dict[str, int] = dict.fromkeys(SKU_NAMES, 0)
        self.sold_out = 0
        self.unavailable = 0

    def add(self, sku: str, units: int) -> None:
        with self.lock:
            self.acknowledged[sku] += units


tally = _Tally()
storefront: dict[str, str] = {}  # the X-Api-Key header of the sale's storefront, set at test start


@events.test_start.add_listener
def stock_the_sale(environment: Environment, **_: Any) -> None:
    token = os.environ.get("EMPORIUM_ADMIN_TOKEN")
    if not token:
        raise SystemExit("set EMPORIUM_ADMIN_TOKEN (the server's admin token) to stock the flash-sale SKUs")
    for sku in SKU_NAMES:
        r = httpx.put(
            f"{environment.host}/v1/stock/{sku}",
            json={"on_hand": UNITS, "per_customer_limit": LIMIT},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        r.raise_for_status()
    shop = httpx.post(
        f"{environment.host}/v1/storefronts",
        json={"storefront_id": PREFIX.lower()},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    shop.raise_for_status()
    storefront["X-Api-Key"] = shop.json()["api_key"]
    print(f"flash sale: {SKUS} SKUs x {UNITS} units ({PREFIX}-*), per-customer limit {LIMIT or 'none'}")


@events.test_stop.add_listener
def report_oversell(environment: Environment, **_: Any) -> None:
    oversold = 0
    lines = []
    for sku in SKU_NAMES:
        stock = httpx.get(f"{environment.host}/v1/stock/{sku}", timeout=30).json()
        taken = stock["held"] + stock["sold"]
        over = max(0, taken - stock["on_hand"], tally.acknowledged[sku] - stock["on_hand"])
        oversold += over
        lines.append(
            f"  {sku}: units {stock['on_hand']}, acknowledged {tally.acknowledged[sku]},"
            f" held {stock['held']}, sold {stock['sold']}, available {stock['available']}, oversell {over}"
        )
    total = environment.stats.total
    print("flash sale result:")
    print("\n".join(lines))
    print(
        f"  throughput {total.total_rps:,.0f} req/s over {total.num_requests:,} requests, "
        f"p99 {total.get_response_time_percentile(0.99):.0f} ms, failures {total.num_failures:,}, "
        f"sold out answers {tally.sold_out:,}, 503 answers {tally.unavailable:,}"
    )
    print(f"  OVERSELL: {oversold} (must be 0)")
    if oversold:
        environment.process_exit_code = 1


class Shopper(FastHttpUser):
    wait_time = between(0.0, 0.05)

    def on_start(self) -> None:
        self.customer = f"shopper-{uuid.uuid4().hex[:10]}"

    @task
    def buy(self) -> None:
        sku = random.choice(SKU_NAMES)
        quantity = random.choice((1, 1, 1, 2))
        key = uuid.uuid4().hex
        for _ in range(5):  # a real client retries the same key on 503 / dropped connections
            with self.client.post(
                "/v1/reservations",
                json={"sku": sku, "quantity": quantity, "customer_id": self.customer},
                headers={"Idempotency-Key": key, **storefront},
                name="POST /v1/reservations",
                catch_response=True,
            ) as resp:
                if resp.status_code == 201:
                    resp.success()
                    body = resp.json()
                    tally.add(sku, body["quantity"])
                    self._pay_or_abandon(sku, body["quantity"], body["reservation_id"])
                    return
                if resp.status_code in (409, 429):  # sold out / over the per-customer limit: expected
                    resp.success()
                    with tally.lock:
                        tally.sold_out += 1
                    return
                if resp.status_code == 503 or resp.status_code == 0:
                    resp.success()
                    with tally.lock:
                        tally.unavailable += 1
                    continue
                resp.failure(f"unexpected {resp.status_code}: {resp.text[:200]}")
                return

    def _pay_or_abandon(self, sku: str, quantity: int, reservation_id: str) -> None:
        """Pay for most holds, abandon the rest; a hold that ends without a sale gives units back."""
        if random.random() < 0.8:
            with self.client.post(
                f"/v1/reservations/{reservation_id}/confirm",
                name="POST /v1/reservations/{id}/confirm",
                headers=storefront,
                catch_response=True,
            ) as resp:
                if resp.status_code == 200:
                    resp.success()
                elif resp.status_code == 409:  # expired meanwhile
                    resp.success()
                    tally.add(sku, -quantity)
        else:
            with self.client.delete(
                f"/v1/reservations/{reservation_id}",
                name="DELETE /v1/reservations/{id}",
                headers=storefront,
                catch_response=True,
            ) as resp:
                if resp.status_code == 204:
                    resp.success()
                    tally.add(sku, -quantity)
