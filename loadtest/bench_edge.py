"""The scaling stage through the edge (`emporium services up edge`): a cached search and reservations
through Nginx with 1 and with 2 API workers, and the same cached search straight to the worker, all in
one run, driven by wrk (loadtest/wrk_reservations.lua).

    python -m loadtest.bench_edge [--seconds 8] [--runs 3] [--connections 32]

Reports medians: Nginx's cost on the p50 of a cached search (through Nginx vs straight to the one
worker, ABAB in the same run), and the throughput of 2 workers over 1 through Nginx. On 2 cores the
load generator, Nginx and the workers share the CPUs: 2 workers can use at most what wrk and Nginx
leave, which the server CPU per request (steady under load) makes visible.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from infra.local.edge import EdgeState, EdgeTopology
from infra.local.stack import SERVICE_ENV, SERVICES, LocalStack
from loadtest.bench_reservations_http import WRK_SCRIPT, WrkResult, run_wrk_command, wrk_executable

TOKEN = "bench-edge-admin"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
SEARCH = "/v1/search?q=linen%20shirt"
SKU = "bench:EDGE-1"
COLUMNS = "product_id,sku,title,description,brand,category_path,price,list_price,currency,stock.wh-north"
BRANDS = ("Roadster", "Fresho", "Levis", "Puma", "Tata")


def catalog(products: int) -> bytes:
    """A small synthetic feed: enough for a search to have hits and facets."""
    rows = [COLUMNS]
    for i in range(products):
        brand = BRANDS[i % len(BRANDS)]
        rows.append(
            f"B-{i},B-{i},{brand} Linen Shirt {i},Linen shirt number {i},{brand},"
            f"Fashion > Men > Shirts,{199 + i % 700}.00,{999 + i % 700},INR,{10 + i % 50}"
        )
    return ("\n".join(rows) + "\n").encode()


def wrk(url: str, mode: str, *, seconds: float, connections: int, key: str = "") -> WrkResult:
    """One wrk run: ``healthz`` mode GETs ``url`` as is; ``reserve`` POSTs reservations of SKU."""
    command = [
        wrk_executable(), "-t", "2", "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "10s",
        "--latency", "-s", str(WRK_SCRIPT), url, "--", mode, SKU, uuid.uuid4().hex[:8], key,
    ]  # fmt: skip
    return run_wrk_command(command, seconds=seconds)


def seed(base: str, products: int) -> str:
    """Import the catalog through the edge, stock SKU, and return a storefront key."""
    with httpx.Client(base_url=base, timeout=60) as client:
        supplier = client.post("/v1/suppliers", json={"supplier_id": "bench", "name": "Bench"}, headers=ADMIN)
        supplier.raise_for_status()
        feed = client.post(
            "/v1/suppliers/bench/feeds",
            content=catalog(products),
            headers={"X-Api-Key": supplier.json()["api_key"], "Content-Type": "text/csv"},
        )
        feed.raise_for_status()
        client.put(f"/v1/stock/{SKU}", json={"on_hand": 10_000_000}, headers=ADMIN).raise_for_status()
        shop = client.post("/v1/storefronts", json={"storefront_id": "bench"}, headers=ADMIN)
        shop.raise_for_status()
        deadline = time.monotonic() + 120
        while client.get(SEARCH).json()["total"] < products:  # measure once the feed is all indexed
            if time.monotonic() > deadline:
                raise SystemExit("the feed was not searchable within 120 s")
            time.sleep(0.5)
        return str(shop.json()["api_key"])


def median(results: list[WrkResult], field: str) -> float:
    return statistics.median(getattr(r, field) for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--products", type=int, default=2000)
    args = parser.parse_args()
    os.environ.update(EMPORIUM_ADMIN_TOKEN=TOKEN, EMPORIUM_RATE_LIMITS="false")
    results: dict[str, list[WrkResult]] = {}
    for workers in (1, 2):
        # a fresh stack per topology: the workers of the first would linger in its consumer groups
        with tempfile.TemporaryDirectory(prefix="emporium-bench-edge-") as tmp:
            stack = LocalStack(Path(tmp) / "stack")
            try:
                urls = stack.ensure_many(SERVICES)
                env = {SERVICE_ENV[s][0]: urls[s] for s in SERVICES}
                edge = EdgeTopology(Path(tmp))
                state = edge.up(env, workers=workers, prometheus=False)
                try:
                    measure(state, workers, args, results)
                finally:
                    edge.down()
            finally:
                stack.stop_all()
    report(results)


def measure(
    state: EdgeState, workers: int, args: argparse.Namespace, results: dict[str, list[WrkResult]]
) -> None:
    """ABAB in one run: (straight to the worker,) through Nginx, reservations through Nginx."""
    load = {"seconds": args.seconds, "connections": args.connections}
    key = seed(state.url, args.products)
    direct = f"http://127.0.0.1:{state.worker_ports[0]}{SEARCH}"
    wrk(f"{state.url}{SEARCH}", "healthz", seconds=2, connections=args.connections)  # warms the cache
    for run in range(args.runs):
        if workers == 1:
            results.setdefault("search direct, 1 worker", []).append(wrk(direct, "healthz", **load))
        r = wrk(f"{state.url}{SEARCH}", "healthz", **load)
        results.setdefault(f"search via Nginx, {workers} worker(s)", []).append(r)
        r = wrk(state.url, "reserve", key=key, **load)
        results.setdefault(f"reserve via Nginx, {workers} worker(s)", []).append(r)
        print(f"{workers} worker(s), run {run + 1}: done (load average {os.getloadavg()[0]:.1f})")


def report(results: dict[str, list[WrkResult]]) -> None:
    print(f"\n{'':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}  statuses")
    for name, runs in results.items():
        statuses: dict[int, int] = {}
        for r in runs:
            for code, n in r.statuses.items():
                statuses[code] = statuses.get(code, 0) + n
        print(
            f"{name:34} {median(runs, 'rps'):9.0f} {median(runs, 'p50_ms'):8.2f} "
            f"{median(runs, 'p99_ms'):8.2f}  {statuses}"
        )
    direct, one, two = (
        results[f"search {k}"]
        for k in ("direct, 1 worker", "via Nginx, 1 worker(s)", "via Nginx, 2 worker(s)")
    )
    added = median(one, "p50_ms") / median(direct, "p50_ms") - 1
    print(f"\nNginx on a cached search's p50: {added:+.0%} (target at most +15%)")
    scale = median(two, "rps") / median(one, "rps")
    print(f"2 workers / 1 worker through Nginx, cached search: {scale:.2f}x (target 1.5x)")
    r1, r2 = results["reserve via Nginx, 1 worker(s)"], results["reserve via Nginx, 2 worker(s)"]
    print(f"2 workers / 1 worker through Nginx, reservations: {median(r2, 'rps') / median(r1, 'rps'):.2f}x")
    print(f"load average now: {os.getloadavg()}")


if __name__ == "__main__":
    main()
