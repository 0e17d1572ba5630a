"""Locust regulars: signed-in shoppers with a taste, the traffic the analysts' loop learns from.

    emporium demo &
    REGULARS_TASTES=rice,tea,coffee,shampoo,biscuits locust -f loadtest/regulars.py --headless \
        -u 15 -r 15 -t 60s --host http://127.0.0.1:8000

Shopper ``n`` is signed in as ``u{n:02d}`` (``X-User-Id``; ``n`` counts from 0 in spawn order), shops
from a region (``X-Region``, ``REGULARS_REGIONS[n % len]``) and has a taste: the query
``REGULARS_TASTES[n % len]`` and its first ``REGULARS_PRODUCTS`` (default 4) search hits. Each visit
searches their taste (one visit in ten another one's, and views only), views products they know and
now and then buys one (reserves and confirms it with the storefront key, which makes a sale with their
user and region). Views, searches and sales become activity events with user and region.

The signal, so that a tiny shop still gives the jobs something to learn and to judge: a shopper knows
their taste's two favourites (the first two hits by id) from the start and discovers the others (in an
order of their own) at 45% and 85% of the run (``-t``, else ``REGULARS_DAY_S``), viewing each new one at
once. The recommendations' time-based holdout (the newest quarter) then holds products each shopper took
for the first time, which shoppers of the same taste had taken earlier. ``REGULARS_SEED`` seeds every
shopper's choices (the timing is the server's). Sold out (409) is not a failure.

The storefront key: see ``loadtest.storefront_key`` (required: anonymous shoppers cannot buy).
"""

from __future__ import annotations

import itertools
import os
import random
import time
from typing import Any
from urllib.parse import quote

import httpx
from locust import FastHttpUser, between, events, task
from locust.env import Environment

from loadtest.storefront_key import storefront_key

TASTES = os.environ.get("REGULARS_TASTES", "rice,tea,coffee,shampoo,biscuits").split(",")
REGIONS = os.environ.get("REGULARS_REGIONS", "NORTH,SOUTH").split(",")
PRODUCTS = int(os.environ.get("REGULARS_PRODUCTS", "4"))
SEED = os.environ.get("REGULARS_SEED", "15")
DISCOVER_AT = (0.45, 0.85)  # fractions of the run at which the third and fourth products become known
BUY_RATE = 0.3


class _Shop:
    """Set at test start: the storefront key, each taste's products, the run's clock; and shopper numbers."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.products: dict[str, list[str]] = {}  # taste -> product ids
        self.skus: dict[str, str] = {}  # product id -> the SKU a reservation names
        self.started = time.monotonic()
        self.day_s = float(os.environ.get("REGULARS_DAY_S", "60"))
        self.numbers = itertools.count()


shop = _Shop()


@events.test_start.add_listener
def _open_shop(environment: Environment, **_: Any) -> None:
    key = storefront_key(str(environment.host), "regulars")
    if not key:
        raise SystemExit("regulars: set EMPORIUM_STOREFRONT_KEY or EMPORIUM_ADMIN_TOKEN (shoppers must buy)")
    shop.headers = {"X-Api-Key": key}
    for taste in TASTES:
        hits = httpx.get(
            f"{environment.host}/v1/search",
            params={"q": taste, "size": PRODUCTS},
            headers=shop.headers,
            timeout=30,
        ).json()["hits"]
        shop.products[taste] = sorted(h["product_id"] for h in hits[:PRODUCTS])
        shop.skus.update((h["product_id"], h["sku"]) for h in hits[:PRODUCTS])
        if len(shop.products[taste]) < 2:
            raise SystemExit(f"regulars: the search {taste!r} finds {len(hits)} products (2+ needed)")
    run_time = getattr(environment.parsed_options, "run_time", None)
    shop.day_s = float(run_time or shop.day_s)
    shop.started = time.monotonic()


class Regular(FastHttpUser):
    wait_time = between(0.3, 1.0)

    def on_start(self) -> None:
        n = next(shop.numbers)
        self.rng = random.Random(f"{SEED}:{n}")
        self.taste = TASTES[n % len(TASTES)]
        self.user = f"u{n:02d}"
        self.headers = {"X-User-Id": self.user, "X-Region": REGIONS[n % len(REGIONS)], **shop.headers}
        favourites, others = shop.products[self.taste][:2], shop.products[self.taste][2:]
        self.rng.shuffle(others)
        self.order = favourites + others
        self.viewed: set[str] = set()

    def known(self) -> list[str]:
        """The favourites, then each other product once the run reaches its share of the day."""
        elapsed = (time.monotonic() - shop.started) / shop.day_s
        found = sum(elapsed >= at for at in DISCOVER_AT)
        return self.order[: 2 + found]

    @task
    def visit(self) -> None:
        if self.rng.random() < 0.1:  # a look at another taste: views, no sale
            other = self.rng.choice(TASTES)
            self._search(other)
            self._view(self.rng.choice(shop.products[other]))
            return
        self._search(self.taste)
        known = self.known()
        new = [p for p in known if p not in self.viewed]
        for product in new or self.rng.sample(known, k=min(2, len(known))):
            self._view(product)
        if self.rng.random() < BUY_RATE:
            self._buy(self.rng.choice(known[:2] if self.rng.random() < 0.7 else known))

    def _search(self, query: str) -> None:
        self.client.get("/v1/search", params={"q": query}, headers=self.headers, name="/v1/search")

    def _view(self, product: str) -> None:
        self.client.get(
            f"/v1/products/{quote(product, safe=':')}", headers=self.headers, name="/v1/products/{id}"
        )
        self.viewed.add(product)

    def _buy(self, product: str) -> None:
        body = {"sku": shop.skus[product], "quantity": 1, "customer_id": self.user}
        with self.client.post(
            "/v1/reservations", json=body, headers=self.headers, name="/v1/reservations", catch_response=True
        ) as held:
            if held.status_code == 409:  # sold out: a shop's answer, not a failure
                held.success()
                return
            if held.status_code != 201:
                held.failure(f"{held.status_code}: {held.text[:200]}")
                return
            reservation = held.json()["reservation_id"]
        self.client.post(
            f"/v1/reservations/{reservation}/confirm",
            headers=self.headers,
            name="/v1/reservations/{id}/confirm",
        )
