"""The recommendation and trending routes through the real app (create_app on a temp data dir: SQLite
event log, SQLite recommendations store, in-process trending store and out-of-stock set, in-process
projectors).

Result events are published to the running app's log by the test, as the analytics jobs do from another
process; the API must serve them within 5 s (the projectors' poll). Products come from a real supplier
feed, so what counts as buyable is what inventory says: a product an admin sets to zero stock disappears
from every list and comes back on restock.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from litestar.testing import AsyncTestClient

from kernel.contracts.events import (
    Envelope,
    PopularProductsComputed,
    RecommendationsComputed,
    RelatedProductsComputed,
    TrendingComputed,
    TrendingEntry,
    new_event,
)
from kernel.eventlog.port import EventLog
from kernel.eventlog.processing import publish_events
from kernel.settings import Settings

ADMIN = "admin-token-for-recommendation-tests"
BEARER = {"Authorization": f"Bearer {ADMIN}"}
SERVED_WITHIN_S = 5.0
T = TypeVar("T")


def computed(user_id: str, product_ids: list[str], revision: int, model: str = "als") -> Envelope:
    payload = RecommendationsComputed(user_id=user_id, product_ids=tuple(product_ids), model=model)
    return new_event(payload, key=f"user:{user_id}", revision=revision, producer="analytics.als")


def related(product_id: str, product_ids: list[str], revision: int) -> Envelope:
    payload = RelatedProductsComputed(product_id=product_id, product_ids=tuple(product_ids))
    return new_event(payload, key=f"related:{product_id}", revision=revision, producer="analytics.als")


def popular(product_ids: list[str], revision: int, region: str = "") -> Envelope:
    payload = PopularProductsComputed(product_ids=tuple(product_ids), region=region)
    return new_event(payload, key=f"popular:{region}", revision=revision, producer="analytics.als")


def trending(
    kind: str, window: str, keys: list[str], revision: int, region: str = "", end: datetime | None = None
) -> Envelope:
    entries = tuple(TrendingEntry(key=k, score=100.0 / (n + 1), count=50 - n) for n, k in enumerate(keys))
    payload = TrendingComputed(
        window=window,
        kind=kind,
        window_end=end or datetime(2026, 12, 6, 9, tzinfo=UTC),
        entries=entries,
        region=region,
        run_id=f"run-{revision}",
    )
    return new_event(
        payload, key=f"trending:{kind}:{window}:{region}", revision=revision, producer="analytics.trending"
    )


class Shop:
    """The running app, the test's own handle on its log, and a catalog of buyable products."""

    def __init__(self, client: AsyncTestClient[Any], event_log: EventLog) -> None:
        self.client = client
        self.event_log = event_log
        self.products: list[str] = []  # product ids, in stock at the start

    async def get(self, path: str, **params: Any) -> Any:
        response = await self.client.get(path, params=params)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()

    async def served(
        self, path: str, ok: Callable[[Any], bool], *, params: dict[str, Any] | None = None
    ) -> Any:
        """Poll ``path`` until ``ok`` holds; fail if that takes longer than the 5 s promise."""
        return await eventually(lambda: self.get(path, **(params or {})), ok, path, SERVED_WITHIN_S)

    async def publish(self, *events: Envelope) -> None:
        await publish_events(self.event_log, list(events))

    async def set_stock(self, product_id: str, on_hand: int) -> None:
        response = await self.client.put(
            f"/v1/stock/{product_id}", json={"warehouses": {"wh-1": on_hand}}, headers=BEARER
        )
        assert response.status_code == 200, response.text
        in_stock = on_hand > 0
        await eventually(
            lambda: self.get(f"/v1/products/{product_id}"), lambda p: p["in_stock"] is in_stock, "stock", 10.0
        )


async def eventually(
    probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], what: str, within: float
) -> T:
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"{what}: still {value!r} after {within}s"
        await asyncio.sleep(0.05)


async def _catalog(shop: Shop, count: int) -> None:
    """A supplier feed of ``count`` products with stock; waits until each is buyable."""
    supplier_id = f"recs-{uuid.uuid4().hex[:6]}"
    r = await shop.client.post("/v1/suppliers", json={"supplier_id": supplier_id}, headers=BEARER)
    assert r.status_code == 201, r.text
    rows = "".join(f"P{n:03d},Product {n},{10 + n},5\n" for n in range(count))
    r = await shop.client.post(
        f"/v1/suppliers/{supplier_id}/feeds",
        content=("sku,title,price,stock.wh-1\n" + rows).encode(),
        headers={"X-Api-Key": r.json()["api_key"], "Content-Type": "text/csv"},
    )
    assert r.status_code == 201, r.text
    shop.products = [f"{supplier_id}:P{n:03d}" for n in range(count)]
    for product_id in shop.products:
        await eventually(
            lambda pid=product_id: shop.client.get(f"/v1/products/{pid}"),  # type: ignore[misc]
            lambda r: r.status_code == 200 and r.json()["in_stock"],
            "catalog",
            30.0,
        )


@pytest.fixture(scope="module")
async def shop(
    tmp_path_factory: pytest.TempPathFactory,
    embedded_settings: Callable[..., Settings],
    running_app: Callable[..., AbstractAsyncContextManager[Any]],
) -> AsyncIterator[Shop]:
    """One app for the module (its start and stop cost seconds); tests use distinct ids and revisions.

    The every-region popularity list decides which per-user lists are current (a list older than it is
    from an earlier run): per-user lists here use revisions above the latest one published before them
    (10, then 20), and the test that publishes a later one (1001) comes last."""
    settings = embedded_settings(
        tmp_path_factory.mktemp("recs-e2e") / "data", admin_token=ADMIN, rate_limits=False
    )
    async with running_app(settings, own_event_log=True) as app:
        s = Shop(app.client, app.event_log)
        await _catalog(s, 12)
        yield s


def uid() -> str:
    return f"shopper-{uuid.uuid4().hex[:8]}"


async def test_before_any_run_an_unknown_user_gets_an_empty_list(shop: Shop) -> None:
    body = await shop.get("/v1/recommendations/nobody-yet", region="nowhere")
    assert body == {"user_id": "nobody-yet", "product_ids": []}


async def test_recommendations_are_served_within_5s_and_follow_the_newest(shop: Shop) -> None:
    p = shop.products
    user = uid()
    started = time.monotonic()
    await shop.publish(computed(user, [p[3], p[1], p[2]], 11))
    body = await shop.served(f"/v1/recommendations/{user}", lambda b: b["product_ids"] == [p[3], p[1], p[2]])
    assert time.monotonic() - started < SERVED_WITHIN_S
    assert body["source"] == "personal" and body["model"] == "als" and body["generated_at"]
    assert (await shop.get(f"/v1/recommendations/{user}", limit=2))["product_ids"] == [p[3], p[1]]

    await shop.publish(computed(user, [p[7]], 13, model="cooc"), computed(user, [p[0]], 12))
    body = await shop.served(f"/v1/recommendations/{user}", lambda b: b["product_ids"] == [p[7]])
    assert body["model"] == "cooc"
    await shop.publish(computed(user, [p[5]], 13))  # a repeat of revision 13 changes nothing
    await asyncio.sleep(1.5)
    assert (await shop.get(f"/v1/recommendations/{user}"))["product_ids"] == [p[7]]


async def test_unknown_users_get_the_popularity_fallback_of_their_region(shop: Shop) -> None:
    p = shop.products
    await shop.publish(popular([p[9], p[8], p[7]], 10), popular([p[4], p[5]], 10, region="south"))
    body = await shop.served(
        f"/v1/recommendations/{uid()}", lambda b: b.get("source") == "popular", params={"region": "south"}
    )
    assert body["product_ids"] == [p[4], p[5]] and body["model"] == "popularity" and body["region"] == "south"
    body = await shop.served(
        f"/v1/recommendations/{uid()}",
        lambda b: b["product_ids"] == [p[9], p[8], p[7]],
        params={"region": "west"},
    )
    assert body["source"] == "popular" and body["region"] == ""  # no list for west: every region's
    assert (await shop.get(f"/v1/recommendations/{uid()}", limit=1))["product_ids"] == [p[9]]


async def test_related_products(shop: Shop) -> None:
    p = shop.products
    await shop.publish(related(p[0], [p[1], p[0], p[2], "someone-else:gone"], 1))
    body = await shop.served(f"/v1/products/{p[0]}/related", lambda b: b["product_ids"] == [p[1], p[2]])
    assert (
        body["product_id"] == p[0] and body["model"] == "bought_together"
    )  # itself and unknown ids left out
    assert (await shop.get(f"/v1/products/{p[0]}/related", limit=1))["product_ids"] == [p[1]]
    assert await shop.get(f"/v1/products/{p[11]}/related") == {"product_id": p[11], "product_ids": []}


async def test_trending_lists_by_window_kind_and_region(shop: Shop) -> None:
    p = shop.products
    await shop.publish(
        trending("queries", "hour", ["milk", "rice"], 5),
        trending("queries", "day", ["atta"], 5),
        trending("products", "day", [p[2], p[3]], 5, region="north"),
        trending("queries", "hour", ["old"], 4),
    )
    body = await shop.served("/v1/trending", lambda b: len(b["entries"]) == 2, params={"window": "hour"})
    assert body["kind"] == "queries" and body["window"] == "hour" and body["region"] == ""
    assert [e["key"] for e in body["entries"]] == ["milk", "rice"]
    assert body["entries"][0] == {"key": "milk", "score": 100.0, "count": 50}
    assert body["window_end"].startswith("2026-12-06T09:00:00") and body["generated_at"]
    day = await shop.get("/v1/trending", window="day", kind="queries", region="north")
    assert [e["key"] for e in day["entries"]] == ["atta"] and day["region"] == ""  # north has no queries list
    products = await shop.served(
        "/v1/trending", lambda b: len(b["entries"]) == 2, params={"kind": "products", "region": "north"}
    )
    assert [e["key"] for e in products["entries"]] == [p[2], p[3]] and products["region"] == "north"
    assert len((await shop.get("/v1/trending", window="hour", limit=1))["entries"]) == 1
    nothing = await shop.get("/v1/trending", window="hour", kind="products")
    assert nothing == {"kind": "products", "window": "hour", "region": "", "entries": []}


async def test_out_of_stock_items_are_never_recommended(shop: Shop) -> None:
    p = shop.products
    user, lonely = uid(), uid()
    sold_out = p[6]
    await shop.publish(
        computed(user, [sold_out, p[10], p[11]], 20),
        computed(lonely, [sold_out], 20),
        related(p[10], [sold_out, p[11]], 1),
        popular([sold_out, p[10]], 20, region="east"),
        trending("products", "hour", [sold_out, p[10]], 7, region="east"),
    )
    await shop.served(f"/v1/recommendations/{user}", lambda b: sold_out in b["product_ids"])
    await shop.set_stock(sold_out, 0)

    assert (await shop.get(f"/v1/recommendations/{user}"))["product_ids"] == [p[10], p[11]]
    assert (await shop.get(f"/v1/products/{p[10]}/related"))["product_ids"] == [p[11]]
    fallback = await shop.get(f"/v1/recommendations/{uid()}", region="east")
    assert fallback["product_ids"] == [p[10]] and fallback["source"] == "popular"
    whole_list_sold_out = await shop.get(f"/v1/recommendations/{lonely}", region="east")
    assert whole_list_sold_out["source"] == "popular" and whole_list_sold_out["product_ids"] == [p[10]]
    hot = await shop.served(
        "/v1/trending",
        lambda b: len(b["entries"]) > 0,
        params={"kind": "products", "window": "hour", "region": "east"},
    )
    assert [e["key"] for e in hot["entries"]] == [p[10]]

    await shop.set_stock(sold_out, 5)  # restocked: recommended again
    assert (await shop.get(f"/v1/recommendations/{user}"))["product_ids"] == [sold_out, p[10], p[11]]
    assert (await shop.get(f"/v1/recommendations/{lonely}"))["source"] == "personal"


async def test_a_run_whose_model_lost_supersedes_earlier_personal_lists(shop: Shop) -> None:
    """Run 1000 published ALS lists and popularity; run 1001's ALS lost, so it published popularity only:
    its shoppers get that popularity, not run 1000's lists (which the store still holds)."""
    p = shop.products
    user = uid()
    await shop.publish(computed(user, [p[1], p[2]], 1000), popular([p[3]], 1000))
    await shop.served(f"/v1/recommendations/{user}", lambda b: b["product_ids"] == [p[1], p[2]])
    await shop.publish(popular([p[4], p[5]], 1001))
    body = await shop.served(f"/v1/recommendations/{user}", lambda b: b.get("source") == "popular")
    assert body["product_ids"] == [p[4], p[5]] and body["model"] == "popularity"
    await shop.publish(computed(user, [p[2]], 1002))  # a later run's ALS won again
    await shop.served(f"/v1/recommendations/{user}", lambda b: b["product_ids"] == [p[2]])


@pytest.mark.parametrize(
    "path",
    [
        "/v1/recommendations/" + "a" * 129,
        "/v1/recommendations/bad%20id",
        "/v1/recommendations/%3Cscript%3E",
        "/v1/recommendations/-leading-dash",
        "/v1/recommendations/ok?limit=0",
        "/v1/recommendations/ok?limit=101",
        "/v1/recommendations/ok?limit=many",
        "/v1/recommendations/ok?region=bad%20region",
        "/v1/recommendations/ok?region=" + "r" * 65,
        "/v1/products/" + "p" * 201 + "/related",
        "/v1/products/%20/related",
        "/v1/products/x/related?limit=0",
        "/v1/trending?window=week",
        "/v1/trending?window=",
        "/v1/trending?kind=brands",
        "/v1/trending?region=-x",
        "/v1/trending?limit=1000",
    ],
)
async def test_bad_input_is_json_400(shop: Shop, path: str) -> None:
    response = await shop.client.get(path)
    assert response.status_code == 400, (path, response.status_code, response.text)
    body = response.json()
    assert body["status_code"] == 400 and body["detail"], path


async def test_a_bad_trending_value_names_what_is_accepted(shop: Shop) -> None:
    body = (await shop.client.get("/v1/trending", params={"window": "week"})).json()
    assert "hour, day" in body["detail"] and "week" in body["detail"]
    body = (await shop.client.get("/v1/trending", params={"kind": "brands"})).json()
    assert "queries, products" in body["detail"]


async def test_readiness_includes_both_stores(shop: Shop) -> None:
    checks = (await shop.client.get("/readyz")).json()["checks"]
    assert checks["recommendations.store"] == "ok" and checks["trending.store"] == "ok"


async def test_a_restarted_app_serves_trending_at_once(
    tmp_path: Any,
    embedded_settings: Callable[..., Settings],
    running_app: Callable[..., AbstractAsyncContextManager[Any]],
) -> None:
    """The in-process trending store is refilled from the log before the app answers."""
    settings = embedded_settings(tmp_path / "data", rate_limits=False)
    async with running_app(settings, own_event_log=True) as app:
        await publish_events(app.event_log, [trending("queries", "hour", ["kettle", "tea"], 1)])
    async with running_app(settings) as app:
        response = await app.client.get("/v1/trending", params={"window": "hour"})
        assert [e["key"] for e in response.json()["entries"]] == ["kettle", "tea"]
