"""The analysts' loop as a shopper and an analyst drive it, shared by the embedded and the cluster
end-to-end tests (``test_analytics_loop.py``, ``test_analytics_loop_cluster.py``): a small catalog,
Locust storefront traffic with a planted signal (``loadtest/regulars.py``: signed-in shoppers with a
region and a taste, searching, viewing and buying), ``emporium analytics run all`` in a child process,
and the checks that the API serves what the run published within a deadline.

Shoppers have a strong taste (one category each) that unfolds over the run, so the data, though tiny,
has a signal and the time-based holdout has something to judge. The trending minimum
support and the holdout are set through their documented settings (``EMPORIUM_TRENDING_MIN_COUNT``,
``EMPORIUM_TRENDING_MIN_ACTORS``, ``EMPORIUM_RECS_HOLDOUT``), as an operator with a small shop would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ADMIN = "loop-admin"
CATEGORIES = ("Tea", "Coffee", "Snacks", "Rice", "Soap")
PER_CATEGORY = 4
USERS = [f"u{n:02d}" for n in range(15)]  # three per category
REGIONS = ("NORTH", "SOUTH")
SOLD_OUT = "loop:Co1"  # the shoppers' favourite coffee, sold out before the run
RUN_TIMEOUT_S = 240  # the run's own wall time is printed; this only stops a hung one
TRAFFIC_S = 15  # the Locust run: long enough for each shopper's taste to unfold (loadtest/regulars.py)
REPO = Path(__file__).resolve().parents[2]


def loop_env(data_dir: Path) -> dict[str, str]:
    """The environment of every process of the loop (``serve``, ``project``, ``analytics run``): the
    embedded stack on ``data_dir`` unless the caller adds cluster URLs."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("EMPORIUM_")}
    return {
        **inherited,
        "PYTHONPATH": str(REPO),
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


def eventually(probe: Callable[[], Any], ok: Callable[[Any], bool], what: str, within: float) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"{what}: still {value!r} after {within:.1f}s"
        time.sleep(0.05)


def sku(category: str, n: int) -> str:
    """Two letters: one would give Snacks and Soap the same SKUs (the feed rejects the repeats)."""
    return f"{category[:2]}{n}"


def in_stock(r: httpx.Response) -> bool:
    return r.status_code == 200 and bool(r.json()["in_stock"])


def catalog(c: httpx.Client, within: float = 30.0) -> list[str]:
    """Supplier ``loop`` feeds four products per category; returns their ids once all are in stock."""
    r = c.post("/v1/suppliers", json={"supplier_id": "loop"})
    assert r.status_code == 201, r.text
    rows = "".join(
        f"{sku(cat, n)},{cat} number {n},{cat},Brand{cat[0]},{100 + n},20\n"
        for cat in CATEGORIES
        for n in range(PER_CATEGORY)
    )
    feed = c.post(
        "/v1/suppliers/loop/feeds",
        content=("sku,title,category_path,brand,price,stock.wh-1\n" + rows).encode(),
        headers={"X-Api-Key": r.json()["api_key"], "Content-Type": "text/csv", "Authorization": ""},
    )
    assert feed.status_code == 201, feed.text
    products = [f"loop:{sku(cat, n)}" for cat in CATEGORIES for n in range(PER_CATEGORY)]
    for pid in products:
        eventually(lambda pid=pid: c.get(f"/v1/products/{pid}"), in_stock, f"catalog {pid}", within)
    return products


def traffic(base: str, storefront_key: str) -> int:
    """The Locust regulars (``loadtest/regulars.py``) as ``locust --headless``, one signed-in shopper per
    ``USERS`` entry, each with a region and a category for taste; the requests they sent. A subprocess,
    not Locust as a library: Locust monkey-patches the standard library with gevent on import."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "EMPORIUM_STOREFRONT_KEY": storefront_key,
        "REGULARS_TASTES": ",".join(c.lower() for c in CATEGORIES),
        "REGULARS_REGIONS": ",".join(REGIONS),
        "REGULARS_PRODUCTS": str(PER_CATEGORY),
        "REGULARS_SEED": "15",
    }
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(REPO / "loadtest" / "regulars.py"), "--host", base,
         "--headless", "-u", str(len(USERS)), "-r", str(len(USERS)), "-t", f"{TRAFFIC_S}s",
         "--only-summary", "--json", "--loglevel", "WARNING"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=TRAFFIC_S + 60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return sum(int(row["num_requests"]) for row in json.loads(done.stdout))


@dataclass
class Shop:
    """What the traffic left behind, and how long each step took."""

    products: list[str]
    sent: int
    timings: dict[str, float] = field(default_factory=dict)


def shop_day(c: httpx.Client, catalog_within: float = 30.0) -> Shop:
    """The catalog, a storefront, the shoppers' traffic, then ``SOLD_OUT`` sold out; and nothing is
    served yet (no run has published)."""
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    products = catalog(c, catalog_within)
    key = c.post("/v1/storefronts", json={"storefront_id": "web"})
    assert key.status_code == 201, key.text
    timings["catalog"] = time.monotonic() - t0
    t0 = time.monotonic()
    sent = traffic(str(c.base_url).rstrip("/"), key.json()["api_key"])
    timings["traffic"] = time.monotonic() - t0
    stock = c.get(f"/v1/stock/{SOLD_OUT}").json()  # on_hand cannot go below what is held or sold
    r = c.put(f"/v1/stock/{SOLD_OUT}", json={"warehouses": {"wh-1": stock["held"] + stock["sold"]}})
    assert r.status_code == 200, r.text
    eventually(lambda: c.get(f"/v1/products/{SOLD_OUT}"), lambda r: not in_stock(r), "sold out", 10.0)

    assert c.get(f"/v1/recommendations/{USERS[0]}").json()["product_ids"] == []  # nothing before a run
    assert c.get("/v1/trending", params={"window": "day"}).json()["entries"] == []
    return Shop(products, sent, timings)


def analytics_run(env: dict[str, str], timeout: float = RUN_TIMEOUT_S) -> tuple[str, float]:
    """``emporium analytics run all`` as a child process: its output and wall time."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", "from emporium.cli import main; main()", "analytics", "run", "all"],
        env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout, time.monotonic() - started


def check_run(out: str, env: dict[str, str]) -> None:
    """The run archived the traffic, published trending and recommendations, and judged the models."""
    print("".join(f"\n  {x}" for x in out.splitlines() if x.startswith("[analytics]")))
    archived = int(out.split("[analytics] archived ")[1].split()[0])
    lake_rows = int(out.split("[analytics] input: ")[1].split()[0])
    # every shopper's searches, views and sales are in (a visit is 2+ events; a shopper makes 10+)
    assert lake_rows >= len(USERS) * 9, out
    assert archived >= 0
    assert "[analytics] trending: published" in out, out
    assert "[analytics] recommendations: published" in out, out
    quality = latest(env, "recommendations", "quality")
    judged = {q["model"]: q["users"] for q in quality}
    assert judged["als"] == judged["popularity"] > 0, quality  # the holdout judged some shoppers
    published = {r["key"] for r in latest(env, "trending", "trending") if r["kind"] == "products"}
    assert SOLD_OUT in published  # in the job's output: what keeps it off the API is the stock filter


def served_after(c: httpx.Client, out: str, products: list[str], ended: float, within: float) -> float:
    """Wait until the API serves the run's results (every shopper's list, trending queries and products)
    and return the delay since ``ended`` (the run's end, ``time.monotonic()``); fail past ``within``."""

    def left() -> float:
        return within - (time.monotonic() - ended)

    # every shopper gets a list: their own if ALS was published, else the popularity fallback
    source = "personal" if als_published(out) else "popular"
    for user in USERS:
        body = eventually(
            lambda user=user: c.get(f"/v1/recommendations/{user}").json(),  # type: ignore[misc]
            lambda b: b.get("source") == source and b["product_ids"],
            f"recommendations of {user}",
            left(),
        )
        assert SOLD_OUT not in body["product_ids"]
        assert set(body["product_ids"]) <= set(products)
    queries = eventually(
        lambda: c.get("/v1/trending", params={"window": "day", "kind": "queries"}).json(),
        lambda b: bool(b["entries"]),
        "trending queries",
        left(),
    )
    tops = eventually(
        lambda: c.get("/v1/trending", params={"window": "hour", "kind": "products"}).json(),
        lambda b: bool(b["entries"]),
        "trending products",
        left(),
    )
    delay = time.monotonic() - ended
    assert {e["key"] for e in queries["entries"]} >= {c.lower() for c in CATEGORIES}
    assert SOLD_OUT not in {e["key"] for e in tops["entries"]}
    north = c.get("/v1/trending", params={"window": "day", "kind": "products", "region": "north"})
    assert north.status_code == 200 and SOLD_OUT not in {e["key"] for e in north.json()["entries"]}
    return delay


def check_rerun(env: dict[str, str]) -> float:
    """A second run on the same input computes and publishes nothing; its wall time."""
    again, seconds = analytics_run(env)
    assert again.count("already published; no events sent") == 3, again
    assert "computing version" not in again and "] published" not in again, again
    return seconds


def als_published(out: str) -> bool:
    """The run's decision line: ``als p@10=... vs popularity ...: published`` or ``NOT published``."""
    (line,) = [x for x in out.splitlines() if "recommendations: als p@10=" in x]
    return line.split(";")[0].endswith(": published")


def latest(env: dict[str, str], job: str, table: str) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    outputs = Path(env["EMPORIUM_DATA_DIR"]) / "lake" / "outputs" / job
    version = (outputs / "LATEST").read_text().strip()
    return list(pq.read_table(outputs / version / table).to_pylist())


def timings_line(label: str, shop: Shop) -> str:
    return f"\n{label}: {shop.sent} requests; timings " + ", ".join(
        f"{k} {v:.1f}s" for k, v in shop.timings.items()
    )
