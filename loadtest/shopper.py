"""Locust shoppers: homepage -> search -> add to cart -> checkout -> confirm, over overlapping carts of
scarce SKUs; at the end, oversell and partially reserved checkouts must both be 0.

    emporium demo &                                   # admin token in .emporium/demo/admin-token
    EMPORIUM_ADMIN_TOKEN=$(cat .emporium/demo/admin-token) locust -f loadtest/shopper.py --headless \
        -u 200 -r 50 -t 60s --host http://127.0.0.1:8000

Settings (env): SHOP_QUERY (the search whose first hits become the scarce SKUs, default "shirt"),
SHOP_SKUS (how many, default 6), SHOP_UNITS (units each, default 200), EMPORIUM_ADMIN_TOKEN (to set
their stock and register the run's storefront at test start).

Every shopper fills a cart with 2-3 of the scarce SKUs, checks out with an Idempotency-Key (retrying the
same key on 503 or a dropped connection), pays for most checkouts and abandons the rest. At test stop
it prints, per SKU, the units, what acknowledged checkouts hold or sold, and the stock the server reports;
the exit code is 1 on any oversell or any checkout answered with fewer held lines than its cart had.
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

QUERY = os.environ.get("SHOP_QUERY", "shirt")
SKUS = int(os.environ.get("SHOP_SKUS", "6"))
UNITS = int(os.environ.get("SHOP_UNITS", "200"))
logging.getLogger("httpx").setLevel(logging.WARNING)


class _Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acknowledged: dict[str, int] = {}  # units in held/confirmed checkouts, minus released ones
        self.checkouts = self.orders = self.partial = self.refused = 0

    def add(self, lines: list[dict[str, Any]], sign: int = 1) -> None:
        with self.lock:
            for line in lines:
                self.acknowledged[line["sku"]] = (
                    self.acknowledged.get(line["sku"], 0) + sign * line["quantity"]
                )


tally = _Tally()
scarce: list[str] = []
storefront: dict[str, str] = {}


@events.test_start.add_listener
def stock_the_shop(environment: Environment, **_: Any) -> None:
    token = os.environ.get("EMPORIUM_ADMIN_TOKEN")
    if not token:
        raise SystemExit("set EMPORIUM_ADMIN_TOKEN (the server's admin token)")
    admin = {"Authorization": f"Bearer {token}"}
    hits = httpx.get(f"{environment.host}/v1/search", params={"q": QUERY, "size": SKUS}, timeout=30).json()[
        "hits"
    ]
    for hit in hits[:SKUS]:
        sku = hit["sku"]
        stock = httpx.get(f"{environment.host}/v1/stock/{sku}", timeout=30).json()
        on_hand = stock.get("held", 0) + stock.get("sold", 0) + UNITS
        warehouses = stock.get("warehouses")
        body = {"warehouses": {next(iter(warehouses)): on_hand}} if warehouses else {"on_hand": on_hand}
        httpx.put(
            f"{environment.host}/v1/stock/{sku}", json=body, headers=admin, timeout=30
        ).raise_for_status()
        scarce.append(sku)
    shop = httpx.post(
        f"{environment.host}/v1/storefronts",
        json={"storefront_id": f"shopper-{uuid.uuid4().hex[:6]}"},
        headers=admin,
        timeout=30,
    )
    shop.raise_for_status()
    storefront["X-Api-Key"] = shop.json()["api_key"]
    print(f"shoppers: {len(scarce)} scarce SKUs ({QUERY!r}), {UNITS} more units each")


@events.test_stop.add_listener
def report(environment: Environment, **_: Any) -> None:
    oversold = 0
    for sku in scarce:
        stock = httpx.get(f"{environment.host}/v1/stock/{sku}", timeout=30).json()
        over = max(0, stock["held"] + stock["sold"] - stock["on_hand"])
        oversold += over
        print(
            f"  {sku}: on_hand {stock['on_hand']}, held {stock['held']}, sold {stock['sold']},"
            f" acknowledged by checkouts {tally.acknowledged.get(sku, 0)}, oversell {over}"
        )
    total = environment.stats.total
    print(
        f"  {tally.checkouts} checkouts, {tally.orders} orders, {tally.refused} refused (sold out);"
        f" {total.total_rps:,.0f} req/s, p99 {total.get_response_time_percentile(0.99):.0f} ms"
    )
    print(f"  OVERSELL: {oversold} (must be 0)   PARTIAL CHECKOUTS: {tally.partial} (must be 0)")
    if oversold or tally.partial:
        environment.process_exit_code = 1


class Shopper(FastHttpUser):
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.customer = f"c-{uuid.uuid4().hex[:12]}"

    @task
    def shop(self) -> None:
        headers = {**storefront, "X-User-Id": self.customer}
        with self.client.get(
            "/v1/homepage", headers=headers, name="GET /v1/homepage", catch_response=True
        ) as resp:
            resp.success()  # the homepage may not be there yet (another part of issue 16)
        self.client.get("/v1/search", params={"q": QUERY}, headers=headers, name="GET /v1/search")
        wanted = random.sample(scarce, k=min(len(scarce), random.choice((2, 3))))
        for sku in wanted:
            self.client.put(
                f"/v1/carts/{self.customer}/items/{sku}",
                json={"quantity": random.choice((1, 2))},
                headers=headers,
                name="PUT /v1/carts/{id}/items/{sku}",
            )
        self._checkout(headers, len(wanted))

    def _checkout(self, headers: dict[str, str], lines: int) -> None:
        key = uuid.uuid4().hex
        for _ in range(5):
            with self.client.post(
                "/v1/checkouts",
                json={"customer_id": self.customer},
                headers={**headers, "Idempotency-Key": key},
                name="POST /v1/checkouts",
                catch_response=True,
            ) as resp:
                if resp.status_code in (200, 201):
                    resp.success()
                    checkout = resp.json()
                    break
                if resp.status_code in (409, 429):
                    resp.success()
                    with tally.lock:
                        tally.refused += 1
                    self.client.delete(
                        f"/v1/carts/{self.customer}/items/{random.choice(scarce)}",
                        headers=headers,
                        name="DELETE /v1/carts/{id}/items/{sku}",
                    )
                    return
                if resp.status_code in (0, 503):
                    resp.success()
                    continue
                resp.failure(f"unexpected {resp.status_code}: {resp.text[:200]}")
                return
        else:
            return
        held = [x for x in checkout["lines"] if x.get("reservation_id")]
        with tally.lock:
            tally.checkouts += 1
            # every line of the cart (at least the ones just added) is in it, each with its hold
            if checkout["status"] == "held" and (len(held) != len(checkout["lines"]) or len(held) < lines):
                tally.partial += 1
        tally.add(checkout["lines"])
        path = f"/v1/checkouts/{checkout['checkout_id']}"
        if random.random() < 0.8:
            with self.client.post(
                f"{path}/confirm",
                json={"payment_reference": key},
                headers=headers,
                name="POST /v1/checkouts/{id}/confirm",
                catch_response=True,
            ) as resp:
                resp.success()
                if resp.status_code == 200:
                    with tally.lock:
                        tally.orders += 1
                elif resp.status_code == 409:
                    tally.add(checkout["lines"], -1)
        else:
            self.client.delete(path, headers=headers, name="DELETE /v1/checkouts/{id}")
            tally.add(checkout["lines"], -1)
