"""What rate limits and key checks cost: cached searches and reservations with the limiter on and off,
alternating in one run (A B A B ...), and the cost of one key check.

    python -m loadtest.bench_limits [search] [reservations] [checks] [middleware] [--runs 2] [--seconds 8]
                                    [--concurrency 8] [--connections 200] [--queries 2000] [--reuse DIR]
                                    [--calls 20000]

Each run starts a server with the limiter on, measures, stops it, then the same with the limiter off
(``EMPORIUM_RATE_LIMITS=false``). "On" sets limits so high that nothing is refused: every request is
counted and checked, none turned away, so the difference is the limiter's own cost.

- search: the embedded stack with the real catalogs (``loadtest.bench_search``: import, projection,
  ``emporium serve``), anonymous searches (counted per client address) over ``--queries`` popular URLs,
  each sent once before the measurement so that nearly every search is answered from the result cache:
  the cheapest search, where a per-request cost shows most.
- reservations: ``loadtest.bench_reservations_http``'s server (cluster engine; a private Redis and
  MariaDB), wrk with a storefront key and a new customer per request; with the limiter on every
  reservation is counted, in Redis, against the storefront and against the customer's units (by the
  engine's reserve script, in the round trip that decides the hold). The
  storefront key is checked in both (the route needs it).
- checks: the CPU one check costs, in process: ``Identities.identify`` for a valid key and for a wrong
  key of a known key id, and the limit checks of an anonymous search and of a reservation, in memory and
  (``--redis-url``) on Redis with ``--connections`` callers at once; and what a reservation's limits cost
  the server when the cluster engine counts them (building the windows for its reserve script).
- middleware (not in the default set): the app on the cluster engine called as raw ASGI, in process, no
  HTTP (``loadtest.asgi_ab``): process CPU per request of ``/healthz`` and of reservations, limiter on
  and off alternating over ``--runs`` rounds of ``--calls`` requests from ``--connections`` callers.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

UNLIMITED = "1000000000/second"
LIMITER_ON = {
    "EMPORIUM_RATE_LIMITS": "true",
    "EMPORIUM_RATE_LIMIT_ANONYMOUS": UNLIMITED,
    "EMPORIUM_RATE_LIMIT_SUPPLIER": UNLIMITED,
    "EMPORIUM_RATE_LIMIT_STOREFRONT": UNLIMITED,
    "EMPORIUM_CUSTOMER_HOLD_UNITS": "1000000000",
}
LIMITER_OFF = {"EMPORIUM_RATE_LIMITS": "false"}
MODES = (("on", LIMITER_ON), ("off", LIMITER_OFF))


def _summary(what: str, unit: str, runs: list[dict[str, Any]]) -> None:
    by_mode = {mode: [r for r in runs if r["mode"] == mode] for mode, _ in MODES}
    on = statistics.median(r["rps"] for r in by_mode["on"])
    off = statistics.median(r["rps"] for r in by_mode["off"])
    cpu_on = statistics.median(r["cpu_us"] for r in by_mode["on"])
    cpu_off = statistics.median(r["cpu_us"] for r in by_mode["off"])
    pairs = [a["rps"] / b["rps"] for a, b in zip(by_mode["on"], by_mode["off"], strict=True)]
    print(
        f"{what}, median of {len(by_mode['on'])} A/B pairs:"
        f" limiter on {on:,.0f} {unit}, off {off:,.0f} {unit}"
        f" -> on/off {on / off:.1%} (per pair: {', '.join(f'{p:.1%}' for p in pairs)}; target >= 95%)\n"
        f"  server CPU per request: on {cpu_on:.0f} us, off {cpu_off:.0f} us"
        f" (+{cpu_on - cpu_off:.0f} us, {cpu_on / cpu_off - 1:+.1%})",
        flush=True,
    )


# cached searches --------------------------------------------------------------------------------


def bench_search(args: argparse.Namespace) -> None:
    import os
    import subprocess

    import uvloop

    from kernel.settings import load_settings
    from loadtest.bench_search import (
        RequestStream,
        _timed,
        cache_counts,
        free_port,
        hit_rate,
        import_catalogs,
        project,
        ranked_search_urls,
        wait_until_caught_up,
    )
    from loadtest.children import spawn_emporium
    from loadtest.httpload import drive
    from loadtest.queries import load_corpus

    data_dir = args.reuse or Path(tempfile.mkdtemp(prefix="emporium-bench-limits-"))
    env = {"EMPORIUM_DATA_DIR": str(data_dir)}
    settings = load_settings(env=env)
    try:
        if args.reuse is None:
            uvloop.run(import_catalogs(settings, 40_000))
            uvloop.run(project(settings))
        corpus = load_corpus(limit=1_000_000)
        urls = ranked_search_urls(corpus, args.queries)
        stream = RequestStream(urls, 1.0, queries=sorted(set(corpus.queries)))
        runs: list[dict[str, Any]] = []
        for n in range(args.runs):
            for mode, mode_env in MODES:
                port = free_port()
                server_env = {**os.environ, **env, "EMPORIUM_LOG_LEVEL": "warning", **mode_env}
                for url_setting in ("EVENT_LOG", "SEARCH", "CACHE", "DATABASE"):
                    server_env.pop(f"EMPORIUM_{url_setting}_URL", None)
                log = (data_dir / "server.log").open("ab")
                server = spawn_emporium(["serve", "--port", str(port)], env=server_env, stderr=log)
                try:
                    uvloop.run(wait_until_caught_up(settings, port, 0))

                    async def measure(port: int = port, pid: int = server.pid) -> dict[str, Any]:
                        await drive(
                            "127.0.0.1", port, urls, concurrency=args.concurrency, seconds=args.warmup
                        )
                        before = await cache_counts(port)
                        result, cpu_ms = await _timed(
                            pid, port, stream.take(int(args.seconds * 15_000)), args
                        )
                        hits = hit_rate(before, await cache_counts(port))
                        return {
                            "rps": result.rps,
                            "cpu_us": cpu_ms * 1000,
                            "hits": hits,
                            "statuses": result.statuses,
                        }

                    r = {"mode": mode, **uvloop.run(measure())}
                finally:
                    server.terminate()
                    try:
                        server.wait(30)
                    except subprocess.TimeoutExpired:
                        server.kill()
                    log.close()
                runs.append(r)
                print(
                    f"run {n + 1} limiter {mode}: {r['rps']:,.0f} searches/s,"
                    f" server CPU {r['cpu_us']:.0f} us/req,"
                    f" cache hits {r['hits']:.0%}, statuses {r['statuses']}",
                    flush=True,
                )
        _summary(f"GET /v1/search (cached, concurrency {args.concurrency})", "req/s", runs)
    finally:
        if args.reuse is None and not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


# reservations -----------------------------------------------------------------------------------


def bench_reservations(args: argparse.Namespace) -> None:
    from loadtest.bench_inventory import servers
    from loadtest.bench_reservations_http import api_server, http_round, storefront_key, wrk_executable

    wrk_executable()
    token = uuid.uuid4().hex
    runs: list[dict[str, Any]] = []
    with servers() as stack:
        server_cpus, load_cpus = stack.split_cores() or (None, None)
        for n in range(args.runs):
            for mode, mode_env in MODES:
                with api_server(
                    stack.redis_url, stack.mysql_url, token, cpus=server_cpus, extra_env=mode_env
                ) as (base, db_url, pid):
                    result = http_round(
                        base,
                        db_url,
                        token,
                        server_pid=pid,
                        seconds=args.seconds,
                        connections=args.connections,
                        threads=1,
                        run=n,
                        key=storefront_key(base, token),
                        load_cpus=load_cpus,
                    )
                reserve = result["reserve"]
                r = {"mode": mode, "rps": reserve.rps, "cpu_us": reserve.server_cpu_us}
                runs.append(r)
                print(
                    f"run {n + 1} limiter {mode}: {reserve.rps:,.0f} reservations/s,"
                    f" p99 {reserve.p99_ms:.1f} ms,"
                    f" server CPU {reserve.server_cpu_us:.0f} us/req, statuses {reserve.statuses},"
                    f" oversell {result['oversell']}, /healthz {result['healthz'].rps:,.0f} rps",
                    flush=True,
                )
    _summary(f"POST /v1/reservations (wrk -c{args.connections}, cluster engine)", "req/s", runs)


# the middleware, in process ----------------------------------------------------------------------


def bench_middleware(args: argparse.Namespace) -> None:
    """CPU per request of the app called as raw ASGI on the cluster engine, limiter on and off
    (``loadtest.asgi_ab``): /healthz (anonymous) and reservations (storefront key)."""
    import uvloop

    from loadtest.asgi_ab import run_ab, summary
    from loadtest.bench_inventory import servers

    with servers() as stack:
        results = uvloop.run(
            run_ab(
                stack.redis_url,
                stack.mysql_url,
                rounds=args.runs,
                calls=args.calls,
                concurrency=args.connections,
            )
        )
    summary(results)


# key checks and limit checks, in process -------------------------------------------------------


def bench_checks(args: argparse.Namespace) -> None:
    """CPU per check: ``identify`` for a valid key and a wrong key of a known key id, and the hits a
    search (anonymous) and a reservation (storefront, customer units) make, in process and
    (with ``--redis-url``) on Redis with ``--connections`` concurrent callers."""
    from emporium.access import hold_policy, rate_limiter
    from emporium.adapters import INGEST_STORE, RATE_LIMIT_STORAGE
    from ingest.service import IngestService
    from kernel.settings import load_settings

    class NoLog:
        async def publish(self, topic: str, messages: object) -> None:
            return None

    async def identities() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            store = INGEST_STORE.open(f"sqlite:///{tmp}/ingest.db")
            await store.start()
            try:
                secret = b"bench-key-secret-of-32-bytes-long"
                service = IngestService(store, NoLog(), key_secret=secret)  # type: ignore[arg-type]
                _, key = await service.identities.add_storefront("bench")
                for name, token in (("valid key", key), ("wrong key, known key id", key[:-4] + "AAAA")):

                    def check(_: int, token: str = token) -> Any:
                        return service.identities.identify(token)

                    per = await _cpu_per_call(check, 1)
                    print(f"identify, {name}: {per:.1f} us CPU per check", flush=True)
            finally:
                await store.close()

    async def limits(url: str, concurrency: int) -> None:
        settings = load_settings(env=LIMITER_ON)
        storage = RATE_LIMIT_STORAGE.open(url)
        try:
            limiter = rate_limiter(settings, storage)
            admit = hold_policy(settings, limiter).admit
            assert admit is not None
            search = await _cpu_per_call(
                lambda i: limiter.hit(limiter.anonymous, "search/127.0.0.1"), concurrency
            )
            shop = limiter.by_kind["storefront"]
            reserve = await _cpu_per_call(
                lambda i: _reserve_checks(limiter.hit(shop, "inventory/shop"), admit("shop", f"c{i}", 1)),
                concurrency,
            )
            where = url.split("://")[0]
            print(
                f"limits on {where} (concurrency {concurrency}): anonymous search {search:.1f} us CPU,"
                f" reservation (storefront + customer units) {reserve:.1f} us CPU",
                flush=True,
            )
            if where.startswith("redis"):
                engine_us = _engine_counted(rate_limiter(settings, storage, defer=True), settings)
                print(
                    f"  counted by the cluster engine's reserve script instead: {engine_us:.1f} us CPU per"
                    " reservation (its windows, and their part of the script's line)",
                    flush=True,
                )
        finally:
            await RATE_LIMIT_STORAGE.close(storage)

    asyncio.run(identities())
    asyncio.run(limits("memory://", 1))
    if args.redis_url:
        asyncio.run(limits(args.redis_url, args.connections))


def _engine_counted(limiter: Any, settings: Any) -> float:
    """CPU of what a reservation's limits cost the server when the engine counts them: the windows of
    the storefront (remembered) and of the customer's units, encoded into the reserve script's line."""
    from emporium.access import EngineCountedLimits, hold_policy
    from inventory.cluster.batcher import _windows

    counted = hold_policy(settings, limiter).counted
    assert isinstance(counted, EngineCountedLimits)
    scope: Any = {"emporium.rate_limit_deferred": (limiter.by_kind["storefront"], "inventory/shop")}
    calls = 20_000
    started = time.process_time()
    for i in range(calls):
        _windows(counted.windows(scope, "shop", f"c{i}", 1))
    return (time.process_time() - started) / calls * 1e6


async def _reserve_checks(*checks: Any) -> None:
    for check in checks:
        await check


async def _cpu_per_call(call: Callable[[int], Any], concurrency: int, calls: int = 20_000) -> float:
    """Microseconds of this process's CPU per call, ``concurrency`` callers at once."""
    await call(-1)

    async def caller(offset: int) -> None:
        for i in range(offset, calls, concurrency):
            await call(i)

    started = time.process_time()
    await asyncio.gather(*(caller(n) for n in range(concurrency)))
    return (time.process_time() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "what", nargs="*", choices=["search", "reservations", "checks", "middleware"], default=[]
    )
    parser.add_argument("--runs", type=int, default=2, help="A/B pairs (limiter on, then off)")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=8, help="search clients")
    parser.add_argument("--connections", type=int, default=200, help="wrk connections (reservations)")
    parser.add_argument("--queries", type=int, default=2000, help="distinct cached search URLs")
    parser.add_argument("--warmup", type=float, default=6.0, help="seconds of searches filling the cache")
    parser.add_argument("--reuse", type=Path, default=None, help="a data dir kept by bench_search --keep")
    parser.add_argument("--keep", action="store_true", help="keep the search data dir")
    parser.add_argument("--calls", type=int, default=20_000, help="middleware: requests per block")
    parser.add_argument("--redis-url", default=None, help="checks: also measure limits on this Redis")
    args = parser.parse_args()
    for what in args.what or ["checks", "search", "reservations"]:
        {
            "search": bench_search,
            "reservations": bench_reservations,
            "checks": bench_checks,
            "middleware": bench_middleware,
        }[what](args)


if __name__ == "__main__":
    main()
