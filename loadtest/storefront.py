"""Locust storefront scenario: shoppers searching, filtering, autocompleting and opening product pages.

Run against a server (``emporium demo`` or ``emporium serve``):

    locust -f loadtest/storefront.py --host http://127.0.0.1:8000 --headless -u 200 -r 50 -t 60s

Queries are drawn from the real catalogs in ``../shared/datasets`` (bigbasket and myntra product names,
brands and categories; override the folder with ``EMPORIUM_DATASETS_DIR``). When the folder is absent a
built-in query list is used instead, and the scenario says so at start. About one query in five carries a
typo (a dropped, doubled or swapped letter), as shoppers' queries do.

The shoppers' requests come from one machine, as a storefront's servers' would: they send the key of a
storefront (``X-Api-Key``, found as ``loadtest.storefront_key`` says); without one, the shoppers are
anonymous and the anonymous limit refuses most of them (429).

The mix per simulated shopper (weights): plain search 10, filtered search (brand / price / category /
rating / sort / delivery zone) 5, next page by cursor 2, autocomplete while typing 6, product page 3.
"""

from __future__ import annotations

import random
import sys
from urllib.parse import quote

from locust import FastHttpUser, between, events, task
from locust.env import Environment

from loadtest.queries import SORTS, ZONES, load_corpus, typo
from loadtest.storefront_key import storefront_key

CORPUS = load_corpus()
storefront: dict[str, str] = {}  # the X-Api-Key header every shopper sends, set at test start


@events.init.add_listener
def _announce(environment: object, **_: object) -> None:
    print(
        f"storefront: {len(CORPUS.queries)} queries, {len(CORPUS.brands)} brands from {CORPUS.source}",
        file=sys.stderr,
    )


@events.test_start.add_listener
def _storefront_key(environment: Environment, **_: object) -> None:
    key = storefront_key(str(environment.host), "locust")
    if key:
        storefront["X-Api-Key"] = key
    else:
        print(
            "storefront: no storefront key; shoppers are anonymous (rate limited by address)", file=sys.stderr
        )


class Shopper(FastHttpUser):
    wait_time = between(0.05, 0.5)

    def on_start(self) -> None:
        self.rng = random.Random()
        self.session = f"s{self.rng.getrandbits(48):x}"
        self.headers = {
            "X-Session-Id": self.session,
            "X-User-Id": f"u{self.rng.randrange(50_000)}",
            **storefront,
        }
        self.product_ids: list[str] = []
        self.cursor: tuple[dict[str, str | list[str]], str] | None = None

    def query(self) -> str:
        q = self.rng.choice(CORPUS.queries)
        if self.rng.random() < 0.2:
            words = q.split()
            j = self.rng.randrange(len(words))
            words[j] = typo(words[j], self.rng)
            q = " ".join(words)
        return q

    def _search(self, params: dict[str, str | list[str]], name: str) -> None:
        with self.client.get(
            "/v1/search", params=params, headers=self.headers, name=name, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return
            body = response.json()
            hits = body.get("hits", [])
            self.product_ids.extend(h["product_id"] for h in hits[:3])
            del self.product_ids[:-200]
            if body.get("next_cursor"):
                self.cursor = ({k: v for k, v in params.items() if k != "cursor"}, body["next_cursor"])

    @task(10)
    def search(self) -> None:
        self._search({"q": self.query()}, "/v1/search")

    @task(5)
    def filtered_search(self) -> None:
        params: dict[str, str | list[str]] = {"q": self.query()}
        choice = self.rng.randrange(6)
        if choice == 0 and CORPUS.brands:
            params["brand"] = self.rng.sample(CORPUS.brands, self.rng.choice((1, 2)))
            params.pop("q")
        elif choice == 1:
            low = self.rng.choice((0, 100, 200, 500))
            params.update(price_min=str(low), price_max=str(low * 4 + 500))
        elif choice == 2 and CORPUS.categories:
            params["category"] = self.rng.choice(CORPUS.categories)
        elif choice == 3:
            params["rating_min"] = str(self.rng.choice((3, 3.5, 4)))
        elif choice == 4:
            params["deliver_to"] = self.rng.choice(ZONES)
        params["sort"] = self.rng.choice(SORTS)
        self._search(params, "/v1/search [filtered]")

    @task(2)
    def next_page(self) -> None:
        if self.cursor is None:
            return self.search()
        params, cursor = self.cursor  # same q, filters and sort: a cursor is bound to its query
        self.cursor = None
        self._search({**params, "cursor": cursor}, "/v1/search [cursor]")

    @task(6)
    def autocomplete(self) -> None:
        q = self.query()
        for end in range(2, min(len(q), 6) + 1, 2):  # a few keystrokes
            self.client.get("/v1/suggest", params={"q": q[:end]}, headers=self.headers, name="/v1/suggest")

    @task(3)
    def product_page(self) -> None:
        if not self.product_ids:
            return self.search()
        product_id = self.rng.choice(self.product_ids)
        with self.client.get(
            f"/v1/products/{quote(product_id, safe=':')}",
            headers=self.headers,
            name="/v1/products/{id}",
            catch_response=True,
        ) as response:
            if response.status_code == 404:  # removed since it was found: not a server failure
                response.success()
