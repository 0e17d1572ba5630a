"""The limiter's CPU per request in process: the app on the cluster engine called as raw ASGI (no server,
no sockets, no HTTP parsing: what is left is the app's own work), limiter on and off alternating.

``bench_limits middleware`` runs it: two apps over one Redis and MariaDB (a database each), both started,
then blocks of ``/healthz`` (anonymous: counted by the limiter in Redis) and ``POST /v1/reservations``
(a storefront key: counted by the engine's reserve script) from ``concurrency`` callers at once,
alternating on, off, off, on... ; per block the process CPU (``time.process_time``) per request, the work
the block leaves behind included (events relayed and projected after it). Read
the medians, on - off, against each other: both apps share the loop, the Redis and the machine.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import msgspec

ADMIN_TOKEN = "bench-limits-admin"
SKU = "bench:ASGI"
Request = tuple[str, str, list[tuple[bytes, bytes]], bytes]


async def call(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    """One request as the server would hand it over; its status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    status = 0
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def _json(doc: object) -> tuple[list[tuple[bytes, bytes]], bytes]:
    return [(b"content-type", b"application/json")], msgspec.json.encode(doc)


@asynccontextmanager
async def started_app(redis_url: str, mysql_url: str, limiter: bool) -> AsyncIterator[tuple[Any, str]]:
    """The app on the cluster engine (limits lifted: nothing is refused), started; a storefront's key."""
    from emporium.app import create_app
    from kernel.settings import load_settings
    from loadtest.bench_limits import LIMITER_OFF, LIMITER_ON
    from loadtest.inventory_audit import drop_mysql_database, mysql_url_with_database

    db_url = mysql_url_with_database(mysql_url, f"bench_asgi_{uuid.uuid4().hex[:8]}")
    async with AsyncExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-asgi-"))
        stack.callback(drop_mysql_database, db_url)
        env = {
            "EMPORIUM_DATA_DIR": tmp,
            "EMPORIUM_EVENT_LOG_URL": f"sqlite:///{tmp}/events.db",
            "EMPORIUM_DATABASE_URL": db_url,
            "EMPORIUM_CACHE_URL": redis_url,
            "EMPORIUM_ADMIN_TOKEN": ADMIN_TOKEN,
            "EMPORIUM_LOG_LEVEL": "warning",
            **(LIMITER_ON if limiter else LIMITER_OFF),
        }
        app = create_app(load_settings(env=env))
        await stack.enter_async_context(app.lifespan())
        admin = [(b"authorization", f"Bearer {ADMIN_TOKEN}".encode())]
        headers, body = _json({"on_hand": 10**9})
        assert await call(app, "PUT", f"/v1/stock/{SKU}", admin + headers, body) == 200
        key = await _storefront_key(app, admin)
        yield app, key


async def _storefront_key(app: Any, admin: list[tuple[bytes, bytes]]) -> str:
    """A new storefront's key (the response body, read from the ASGI messages)."""
    headers, body = _json({"storefront_id": f"bench-{uuid.uuid4().hex[:8]}"})
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/storefronts",
        "raw_path": b"/v1/storefronts",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), *admin, *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "scheme": "http",
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
        "state": {},
    }
    await app(scope, receive, send)
    return str(msgspec.json.decode(b"".join(chunks))["api_key"])


def healthz(_: int) -> Request:
    return "GET", "/healthz", [], b""


def reservation(key: str) -> Callable[[int], Request]:
    tag = uuid.uuid4().hex[:6]
    headers = [(b"x-api-key", key.encode()), (b"content-type", b"application/json")]

    def request(i: int) -> Request:
        body = {"sku": SKU, "quantity": 1, "customer_id": f"c{tag}{i}"}
        return "POST", "/v1/reservations", headers, msgspec.json.encode(body)

    return request


async def idle_cpu_rate(seconds: float = 2.0) -> float:
    """CPU seconds per second the process spends with no request (both apps' background tasks: event
    processors polling, sweepers, heartbeats), to take out of a block's CPU in proportion to its length."""
    import asyncio

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    return (time.process_time() - cpu) / (time.perf_counter() - started)


async def settled(idle_rate: float, step: float = 0.5, most: float = 15.0) -> None:
    """Wait until the process is back to its idle CPU rate: the work requests leave behind (their events
    relayed and projected) is counted with them, not with the next block (the other app's)."""
    import asyncio

    waited = 0.0
    while waited < most:
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.sleep(step)
        waited += step
        if (time.process_time() - cpu) / (time.perf_counter() - wall) <= idle_rate * 1.5 + 0.005:
            return


async def cpu_per_request(
    app: Any,
    make: Callable[[int], Request],
    calls: int,
    concurrency: int,
    expect: int,
    idle_rate: float = 0.0,
) -> float:
    """Microseconds of process CPU per request, ``concurrency`` callers at once, less ``idle_rate`` (CPU
    seconds per second of background work) for the block's length; every answer ``expect``."""
    requests = [make(i) for i in range(calls)]  # built before the clock starts
    statuses: dict[int, int] = {}

    async def caller(offset: int) -> None:
        for i in range(offset, calls, concurrency):
            status = await call(app, *requests[i])
            statuses[status] = statuses.get(status, 0) + 1

    import asyncio

    started, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller(n) for n in range(concurrency)))
    await settled(idle_rate)  # what the requests left to do (outbox, projectors) is theirs too
    spent = time.process_time() - started - idle_rate * (time.perf_counter() - wall)
    if set(statuses) != {expect}:
        raise RuntimeError(f"statuses {statuses}, expected only {expect}")
    return spent / calls * 1e6


async def run_ab(
    redis_url: str, mysql_url: str, *, rounds: int, calls: int, concurrency: int
) -> dict[str, dict[str, list[float]]]:
    """``rounds`` of on, off (every other round off, on): µs of CPU per request by route and mode."""
    import gc
    import os

    from kernel.observability import configure_logging

    configure_logging("warning", "console")
    results: dict[str, dict[str, list[float]]] = {
        route: {"on": [], "off": []} for route in ("healthz", "reservation")
    }
    async with (
        started_app(redis_url, mysql_url, True) as (on, on_key),
        started_app(redis_url, mysql_url, False) as (off, off_key),
    ):
        apps = {"on": (on, reservation(on_key)), "off": (off, reservation(off_key))}
        gc.collect()  # as ``emporium serve`` does before it serves (emporium/cli/main.py)
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
        for app, reserve in apps.values():  # warm-up: pools, caches, scripts
            await cpu_per_request(app, healthz, calls // 4, concurrency, 200)
            await cpu_per_request(app, reserve, calls // 4, concurrency, 201)
        await idle_cpu_rate(3.0)  # the warm-up's aftermath, then the rate of the background alone
        idle = await idle_cpu_rate()
        print(f"background CPU of both apps, idle: {idle * 1e3:.1f} ms per second", flush=True)
        for n in range(rounds):
            order = ("on", "off") if n % 2 == 0 else ("off", "on")
            for mode in order:
                app, reserve = apps[mode]
                h = await cpu_per_request(app, healthz, calls, concurrency, 200, idle)
                r = await cpu_per_request(app, reserve, calls, concurrency, 201, idle)
                results["healthz"][mode].append(h)
                results["reservation"][mode].append(r)
                print(
                    f"round {n + 1} limiter {mode}: /healthz {h:.1f} us, reservation {r:.1f} us CPU per"
                    f" request (load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
    return results


def by_position(values: dict[str, list[float]]) -> tuple[float, list[float]]:
    """On - off, position by position: round n runs on first when n is even, off first when odd, and the
    second app of a round pays for the first's leftovers (the batcher's and the group commit's state),
    so each position's medians are compared and the two differences averaged."""
    diffs = []
    for first in (True, False):
        on = [v for n, v in enumerate(values["on"]) if (n % 2 == 0) == first]
        off = [v for n, v in enumerate(values["off"]) if (n % 2 == 1) == first]
        if on and off:
            diffs.append(statistics.median(on) - statistics.median(off))
    return statistics.fmean(diffs), diffs


def summary(results: dict[str, dict[str, list[float]]]) -> None:
    for route, by_mode in results.items():
        on, off = statistics.median(by_mode["on"]), statistics.median(by_mode["off"])
        diff, diffs = by_position(by_mode)
        print(
            f"{route}: median CPU per request, limiter on {on:.1f} us, off {off:.1f} us;"
            f" on - off by position {diff:+.1f} us ({diff / off:+.1%} of off;"
            f" first in round {diffs[0]:+.1f}, second {diffs[-1]:+.1f})",
            flush=True,
        )
