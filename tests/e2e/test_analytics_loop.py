"""The analysts' loop end to end, as processes: ``emporium serve`` (embedded default, a fresh data dir),
storefront traffic over HTTP, ``emporium analytics run all`` in a child process on the same data dir
(it archives the log first), and the API serving what the run published within 5 s of its end.

The traffic is an httpx driver, not Locust: the storefront scenario only searches and opens product
pages anonymously, and this loop needs signed-in views, regions and confirmed reservations. Shoppers
have a strong taste (one category each), so the data, though tiny, has a signal. The trending minimum
support and the holdout are set through their documented settings (``EMPORIUM_TRENDING_MIN_COUNT``,
``EMPORIUM_TRENDING_MIN_ACTORS``, ``EMPORIUM_RECS_HOLDOUT``), as an operator with a small shop would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from inventory_support import ServiceProcess, free_port

pytestmark = pytest.mark.slow

ADMIN = "loop-admin"
SERVED_WITHIN_S = 5.0
CATEGORIES = ("Tea", "Coffee", "Snacks", "Rice", "Soap")
PER_CATEGORY = 4
USERS = [f"u{n:02d}" for n in range(15)]  # three per category
REGIONS = ("NORTH", "SOUTH")
SOLD_OUT = "loop:C1"  # the shoppers' favourite coffee, sold out before the run


def _env(data_dir: Path) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("EMPORIUM_")}
    return {
        **inherited,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "EMPORIUM_DATA_DIR": str(data_dir),
        "EMPORIUM_ADMIN_TOKEN": ADMIN,
        "EMPORIUM_RATE_LIMITS": "false",
        "EMPORIUM_ARCHIVE_FLUSH_S": "10",  # the run waits for what serve holds buffered up to this long
        "EMPORIUM_LOG_FORMAT": "console",
        "EMPORIUM_SPARK_URL": "local[2]",
        "EMPORIUM_TRENDING_MIN_COUNT": "2",
        "EMPORIUM_TRENDING_MIN_ACTORS": "2",
        "EMPORIUM_RECS_HOLDOUT": "0.25",
    }


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServiceProcess, dict[str, str]]]:
    env = _env(tmp_path / "data")
    service = ServiceProcess(env=env, port=free_port(), log=tmp_path / "serve.log")
    service.start()
    try:
        yield service, env
    finally:
        service.kill()


def eventually(probe: Callable[[], Any], ok: Callable[[Any], bool], what: str, within: float) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"{what}: still {value!r} after {within}s"
        time.sleep(0.05)


def _catalog(c: httpx.Client) -> list[str]:
    r = c.post("/v1/suppliers", json={"supplier_id": "loop"})
    assert r.status_code == 201, r.text
    rows = "".join(
        f"{cat[0]}{n},{cat} number {n},{cat},Brand{cat[0]},{100 + n},20\n"
        for cat in CATEGORIES
        for n in range(PER_CATEGORY)
    )
    feed = c.post(
        "/v1/suppliers/loop/feeds",
        content=("sku,title,category_path,brand,price,stock.wh-1\n" + rows).encode(),
        headers={"X-Api-Key": r.json()["api_key"], "Content-Type": "text/csv", "Authorization": ""},
    )
    assert feed.status_code == 201, feed.text
    products = [f"loop:{cat[0]}{n}" for cat in CATEGORIES for n in range(PER_CATEGORY)]
    for pid in products:
        eventually(lambda pid=pid: c.get(f"/v1/products/{pid}"), _in_stock, f"catalog {pid}", 30.0)
    return products


def _in_stock(r: httpx.Response) -> bool:
    return r.status_code == 200 and bool(r.json()["in_stock"])


def _shop(
    c: httpx.Client, storefront: dict[str, str], user: str, region: str, pids: list[str], buy: int
) -> int:
    """One shopper views ``pids`` and buys (reserves and confirms) the first ``buy``; requests sent."""
    who = {"X-User-Id": user, "X-Region": region, **storefront}
    for pid in pids:
        r = c.get(f"/v1/products/{pid}", headers=who)
        assert r.status_code == 200, r.text
    for pid in pids[:buy]:
        body = {"sku": pid, "quantity": 1, "customer_id": user}
        held = c.post("/v1/reservations", json=body, headers={**storefront, "X-Region": region})
        assert held.status_code == 201, held.text
        done = c.post(f"/v1/reservations/{held.json()['reservation_id']}/confirm", headers=who)
        assert done.status_code == 200, done.text
    return len(pids) + 2 * buy


def _traffic(c: httpx.Client, storefront: dict[str, str]) -> int:
    """A planted signal, in two rounds so the time-based holdout has something to judge: each shopper
    keeps to one category; first they search it, view three of its products and buy its two favourites
    (0 and 1), later they take the category's fourth product (3 if they had viewed 2, else 2)."""
    sent = 0
    for n, user in enumerate(USERS):
        cat, region = CATEGORIES[n % len(CATEGORIES)], REGIONS[n % len(REGIONS)]
        for q in (cat.lower(), f"{cat.lower()} number"):
            r = c.get(
                "/v1/search", params={"q": q}, headers={"X-User-Id": user, "X-Region": region, **storefront}
            )
            assert r.status_code == 200, r.text
        pids = [f"loop:{cat[0]}{i}" for i in (0, 1, 2 + n % 2)]
        sent += 2 + _shop(c, storefront, user, region, pids, buy=2)
    for n, user in enumerate(USERS):
        cat, region = CATEGORIES[n % len(CATEGORIES)], REGIONS[n % len(REGIONS)]
        sent += _shop(c, storefront, user, region, [f"loop:{cat[0]}{2 + (n + 1) % 2}"], buy=1)
    return sent


def _analytics_run(env: dict[str, str]) -> tuple[str, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", "from emporium.cli import main; main()", "analytics", "run", "all"],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout, time.monotonic() - started


def test_storefront_traffic_becomes_recommendations_and_trending_within_5s(
    server: tuple[ServiceProcess, dict[str, str]],
) -> None:
    service, env = server
    timings: dict[str, float] = {}
    with httpx.Client(base_url=service.base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30) as c:
        t0 = time.monotonic()
        products = _catalog(c)
        key = c.post("/v1/storefronts", json={"storefront_id": "web"})
        assert key.status_code == 201, key.text
        storefront = {"X-Api-Key": key.json()["api_key"], "Authorization": ""}
        timings["catalog"] = time.monotonic() - t0
        t0 = time.monotonic()
        sent = _traffic(c, storefront)
        timings["traffic"] = time.monotonic() - t0
        sold = 3  # the coffee shoppers each bought one; on_hand cannot go below what was sold
        r = c.put(f"/v1/stock/{SOLD_OUT}", json={"warehouses": {"wh-1": sold}})
        assert r.status_code == 200, r.text
        eventually(lambda: c.get(f"/v1/products/{SOLD_OUT}"), lambda r: not _in_stock(r), "sold out", 10.0)

        assert c.get(f"/v1/recommendations/{USERS[0]}").json()["product_ids"] == []  # nothing before a run
        assert c.get("/v1/trending", params={"window": "day"}).json()["entries"] == []

        out, timings["run"] = _analytics_run(env)
        print("".join(f"\n  {x}" for x in out.splitlines() if x.startswith("[analytics]")))
        archived = int(out.split("[analytics] archived ")[1].split()[0])
        lake_rows = int(out.split("[analytics] input: ")[1].split()[0])
        # every shopper's 2 searches, 4 views and 3 sales are in (and a view per anonymous product page)
        assert lake_rows >= len(USERS) * 9, out
        assert archived >= 0
        ended = time.monotonic()
        assert "[analytics] trending: published" in out, out
        assert "[analytics] recommendations: published" in out, out
        quality = _latest(env, "recommendations", "quality")
        judged = {q["model"]: q["users"] for q in quality}
        assert judged["als"] == judged["popularity"] > 0, quality  # the holdout judged some shoppers
        published = {r["key"] for r in _latest(env, "trending", "trending") if r["kind"] == "products"}
        assert SOLD_OUT in published  # in the job's output: what keeps it off the API is the stock filter

        # every shopper gets a list: their own if ALS was published, else the popularity fallback
        source = "personal" if _als_published(out) else "popular"
        for user in USERS:
            body = eventually(
                lambda user=user: c.get(f"/v1/recommendations/{user}").json(),  # type: ignore[misc]
                lambda b: b.get("source") == source and b["product_ids"],
                f"recommendations of {user}",
                SERVED_WITHIN_S - (time.monotonic() - ended),
            )
            assert SOLD_OUT not in body["product_ids"]
            assert set(body["product_ids"]) <= set(products)
        queries = eventually(
            lambda: c.get("/v1/trending", params={"window": "day", "kind": "queries"}).json(),
            lambda b: bool(b["entries"]),
            "trending queries",
            SERVED_WITHIN_S - (time.monotonic() - ended),
        )
        tops = eventually(
            lambda: c.get("/v1/trending", params={"window": "hour", "kind": "products"}).json(),
            lambda b: bool(b["entries"]),
            "trending products",
            SERVED_WITHIN_S - (time.monotonic() - ended),
        )
        timings["served"] = time.monotonic() - ended
        assert {e["key"] for e in queries["entries"]} >= {c.lower() for c in CATEGORIES}
        assert SOLD_OUT not in {e["key"] for e in tops["entries"]}
        north = c.get("/v1/trending", params={"window": "day", "kind": "products", "region": "north"})
        assert north.status_code == 200 and SOLD_OUT not in {e["key"] for e in north.json()["entries"]}

        again, timings["rerun"] = _analytics_run(env)
        assert again.count("already published; no events sent") == 3, again
        assert "computing version" not in again and "] published" not in again, again
    print(f"\nloop: {sent} requests; timings {', '.join(f'{k} {v:.1f}s' for k, v in timings.items())}")


def _als_published(out: str) -> bool:
    """The run's decision line: ``als p@10=... vs popularity ...: published`` or ``NOT published``."""
    (line,) = [x for x in out.splitlines() if "recommendations: als p@10=" in x]
    return line.split(";")[0].endswith(": published")


def _latest(env: dict[str, str], job: str, table: str) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    outputs = Path(env["EMPORIUM_DATA_DIR"]) / "lake" / "outputs" / job
    version = (outputs / "LATEST").read_text().strip()
    return list(pq.read_table(outputs / version / table).to_pylist())
