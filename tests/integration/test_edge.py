"""The edge topology (`emporium services up edge`): Nginx in front of two API workers and a projector
process over the local cluster stack, started and stopped with one command each. Under load (the Locust
storefront scenario, plus searches and reservations of the test's own), one worker
is killed with SIGKILL: no search fails (Nginx retries idempotent requests on the other worker),
reservations retried with their Idempotency-Key are never doubled (the truth store has exactly one
hold per key), and the supervisor restarts the worker, which takes traffic again by itself."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import psutil
import pymysql
import pytest
from inventory_support import (
    audit_mysql,
    drop_mysql_database,
    mysql_target,
    mysql_url_with_database,
    unique_name,
)

from infra.local.stack import LocalStack

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

TOKEN = "edge-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
SKU = "shop:EDGE-1"
LOAD_S = 14.0
KILL_AFTER_S = 4.0
EMPORIUM = str(Path(sys.executable).parent / "emporium")
REPO = Path(__file__).resolve().parents[2]


class Edge(NamedTuple):
    url: str
    home: Path
    state: dict[str, Any]
    database_url: str


def _cli(stack_dir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [EMPORIUM, "services", *args, "--stack-dir", str(stack_dir)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)


def _children(home: Path) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in json.loads((home / "children.json").read_text())}


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, mysql_url: str, cassandra_url: str
) -> Iterator[dict[str, str]]:
    """The env of `emporium services up edge` (which then starts only the edge): the session's Redis (a
    database of this module's own), MariaDB and Cassandra, and a broker (noida-db: Kafka and
    Elasticsearch) of this module's own. On the session's broker the edge's projector would share its
    consumer groups with the projectors earlier tests ran, and a member that died without leaving keeps
    its partitions there for a long time (the feed consumer then never saw this module's feeds)."""
    broker = LocalStack(tmp_path_factory.mktemp("edge-broker"))
    try:
        urls = broker.ensure_many(["kafka", "elasticsearch"])
        yield {
            **os.environ,
            "EMPORIUM_EVENT_LOG_URL": urls["kafka"],
            "EMPORIUM_SEARCH_URL": f"{urls['elasticsearch']}/?index={unique_name('edge')}",
            "EMPORIUM_CACHE_URL": redis_url.rsplit("/", 1)[0] + "/9",
            "EMPORIUM_DATABASE_URL": mysql_url,
            "EMPORIUM_RECOMMENDATIONS_URL": cassandra_url,
            "EMPORIUM_ADMIN_TOKEN": TOKEN,
            "EMPORIUM_LOG_FORMAT": "json",
        }
    finally:
        broker.stop_all()


@contextmanager
def _edge(stack_dir: Path, servers: dict[str, str], *args: str, **env: str) -> Iterator[Edge]:
    """`emporium services up edge ARGS` on a database of its own; `services down` at the end, which
    must leave no process behind."""
    database_url = mysql_url_with_database(servers["EMPORIUM_DATABASE_URL"], unique_name("edge"))
    env = {**servers, "EMPORIUM_DATABASE_URL": database_url, **env}
    started = time.monotonic()
    up = _cli(stack_dir, env, "up", "edge", *args)  # one command starts the topology
    assert up.returncode == 0, f"{up.stdout}\n{up.stderr}"
    home = stack_dir.resolve() / "edge"
    state = json.loads((home / "edge.json").read_text())
    print(f"edge up in {time.monotonic() - started:.1f}s: {up.stdout}")
    pids = [c["pid"] for c in _children(home).values()] + [state["supervisor_pid"]]
    try:
        yield Edge(state["url"], home, state, database_url)
    finally:
        down = _cli(stack_dir, env, "down")  # one command stops it
        pids += [c["pid"] for c in _children(home).values()]
        drop_mysql_database(database_url)
    assert down.returncode == 0, f"{down.stdout}\n{down.stderr}"
    left = [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert not left, f"still running after `services down`: {left}"


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory, servers: dict[str, str]) -> Iterator[Edge]:
    stack_dir = tmp_path_factory.mktemp("edge-stack")
    # the load comes from one address: no anonymous rate limit in the way
    with _edge(stack_dir, servers, "--workers", "2", EMPORIUM_RATE_LIMIT_ANONYMOUS="100000/second") as edge:
        yield edge


async def _seed(client: httpx.AsyncClient) -> dict[str, str]:
    assert (await client.put(f"/v1/stock/{SKU}", json={"on_hand": 100_000}, headers=ADMIN)).status_code == 200
    shop = await client.post("/v1/storefronts", json={"storefront_id": "shop"}, headers=ADMIN)
    assert shop.status_code == 201, shop.text
    return {"X-Api-Key": shop.json()["api_key"]}


async def _searches(client: httpx.AsyncClient, until: float, statuses: Counter[object]) -> None:
    while time.monotonic() < until:
        try:
            response = await client.get("/v1/search", params={"q": "shirt"})
            statuses[response.status_code] += 1
        except httpx.HTTPError as exc:
            statuses[type(exc).__name__] += 1


async def _reserve(client: httpx.AsyncClient, key: dict[str, str], i: int, retried: Counter[object]) -> str:
    """One reservation, retried with the same Idempotency-Key until it has an answer."""
    body = {"sku": SKU, "quantity": 1, "customer_id": f"c{i}"}
    headers = {**key, "Idempotency-Key": f"edge-{i}"}
    for _attempt in range(50):
        try:
            response = await client.post("/v1/reservations", json=body, headers=headers)
        except httpx.HTTPError as exc:
            retried[type(exc).__name__] += 1
        else:
            if response.status_code == 201:
                return str(response.json()["reservation_id"])
            assert response.status_code in (502, 503, 504), response.text
            retried[response.status_code] += 1
        await asyncio.sleep(0.2)
    raise AssertionError(f"reservation edge-{i} got no answer in 50 attempts")


async def _reservations(client, key, start: int, until: float, ids: dict[int, str], retried) -> None:
    i = start
    while time.monotonic() < until:
        ids[i] = await _reserve(client, key, i, retried)
        i += 10_000


async def _locust(edge: Edge, key: dict[str, str], prefix: Path) -> dict[str, str]:
    """The Locust storefront scenario (loadtest/storefront.py) through the edge for LOAD_S seconds: its
    aggregated row (request and failure counts)."""
    locust = str(Path(sys.executable).parent / "locust")
    process = await asyncio.create_subprocess_exec(
        locust, "-f", str(REPO / "loadtest" / "storefront.py"), "--host", edge.url, "--headless",
        "-u", "10", "-r", "10", "-t", f"{LOAD_S:.0f}s", "--csv", str(prefix), "--only-summary",
        env={**os.environ, "EMPORIUM_STOREFRONT_KEY": key["X-Api-Key"]}, cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), LOAD_S + 60)
    text = await asyncio.to_thread(Path(f"{prefix}_stats.csv").read_text)
    rows = list(csv.DictReader(text.splitlines()))
    assert rows, err.decode()[-2000:]
    return next(row for row in rows if row["Name"] == "Aggregated")


async def _kill_later(home: Path, delay: float) -> int:
    await asyncio.sleep(delay)
    victim = _children(home)["worker-0"]["pid"]
    os.kill(victim, signal.SIGKILL)
    return victim


def _held_rows(database_url: str) -> int:
    conn = pymysql.connect(**mysql_target(database_url).pymysql_kwargs())
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM inv_reservations WHERE sku = %s", (SKU,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


async def test_kill_a_worker_under_load(edge: Edge, tmp_path: Path) -> None:
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=edge.url, timeout=30, limits=limits) as client:
        key = await _seed(client)
        until = time.monotonic() + LOAD_S
        searched: Counter[object] = Counter()
        retried: Counter[object] = Counter()
        ids: dict[int, str] = {}
        victim, shoppers, *_ = await asyncio.gather(
            _kill_later(edge.home, KILL_AFTER_S),
            _locust(edge, key, tmp_path / "locust"),
            *(_searches(client, until, searched) for _ in range(3)),
            *(_reservations(client, key, start, until, ids, retried) for start in range(4)),
        )
    print(
        f"searches {dict(searched)}; Locust shoppers {shoppers}; reservations {len(ids)}, "
        f"retried {dict(retried)}; killed pid {victim}"
    )
    assert set(searched) == {200} and searched[200] > 50, searched
    assert shoppers["Failure Count"] == "0" and int(shoppers["Request Count"]) > 50, shoppers
    assert len(set(ids.values())) == len(ids) > 20
    audit = audit_mysql(edge.database_url, SKU)
    assert audit.consistent, audit
    assert audit.held == audit.reservations_held == len(ids), (audit, len(ids))  # one hold per key
    assert _held_rows(edge.database_url) == len(ids)
    await _rejoined(edge, victim)


async def _rejoined(edge: Edge, victim: int) -> None:
    """The supervisor restarted worker-0 on its port, and Nginx sends it traffic again."""
    port = edge.state["worker_ports"][0]
    deadline = time.monotonic() + 120
    async with httpx.AsyncClient(timeout=5) as direct:
        while True:
            child = _children(edge.home)["worker-0"]
            try:
                answer = await direct.get(f"http://127.0.0.1:{port}/readyz")
                ready, last = answer.status_code == 200, answer.text
            except httpx.HTTPError as exc:
                ready, last = False, repr(exc)
            if ready and child["pid"] != victim:
                break
            assert time.monotonic() < deadline, f"worker-0 was not restarted within 120 s: {last}"
            await asyncio.sleep(0.5)
        assert child["restarts"] >= 1
        await asyncio.sleep(6)  # Nginx's fail_timeout: the worker is tried again after 5 s
        async with httpx.AsyncClient(base_url=edge.url, timeout=10) as client:
            for _ in range(60):
                assert (await client.get("/v1/search", params={"q": "linen"})).status_code == 200
        metrics = (await direct.get(f"http://127.0.0.1:{port}/metrics")).text
    served = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("emporium_http_requests_total{") and 'route="/search"' in line  # relative to /v1
    )
    assert served >= 10, f"the restarted worker answered {served} of 60 searches"


def test_prometheus_scrapes_every_worker_and_the_projector(edge: Edge) -> None:
    prometheus = edge.state["prometheus_url"]
    deadline = time.monotonic() + 60
    while True:
        targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        health = {(t["labels"]["job"], t["labels"]["instance"]): t["health"] for t in targets}
        if len(health) == 3 and set(health.values()) == {"up"}:
            break
        assert time.monotonic() < deadline, health
        time.sleep(1)
    rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert {g["name"] for g in rules} >= {"emporium-projectors", "emporium-api", "emporium-inventory"}
    query = httpx.get(f"{prometheus}/api/v1/query", params={"query": "emporium_projector_lag"}, timeout=5)
    assert query.json()["data"]["result"], "the projector's lag is scraped"


FEED_ITEMS = 300


def _feed(round_: int) -> bytes:
    lines = ["sku,title,price,currency,category_path,stock.wh-north"]
    lines += [
        f"F-{i},Edge feed item {i},{i % 50 + 1}.25,INR,Home > Decor,{round_ * 10 + i % 7}"
        for i in range(FEED_ITEMS)
    ]
    return ("\n".join(lines) + "\n").encode()


async def _feed_stock_arrives(client: httpx.AsyncClient, supplier: str, round_: int, within: float) -> float:
    """Seconds until every item of the round's feed has that feed's stock (read from a live worker)."""
    started = time.monotonic()
    wanted = {f"{supplier}:F-{i}": round_ * 10 + i % 7 for i in range(FEED_ITEMS)}
    while wanted:
        for sku, quantity in list(wanted.items())[:50]:
            answer = await client.get(f"/v1/stock/{sku}")
            if answer.status_code == 200 and answer.json()["on_hand"] == quantity:
                del wanted[sku]
        assert time.monotonic() - started < within, f"{len(wanted)} items without round {round_}'s stock"
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def test_feed_stock_is_taken_in_by_the_projector_whatever_the_workers_do(edge: Edge) -> None:
    """Inventory's feed consumer runs in the projector process, not in the workers: a feed's stock arrives
    while a worker is dead (kill -9) and restarting, and the restarted worker is ready at once (it has no
    feed consumer to catch up)."""
    live = f"http://127.0.0.1:{edge.state['worker_ports'][1]}"  # feeds are never retried: no dead worker
    async with httpx.AsyncClient(base_url=live, timeout=60) as client:
        supplier = unique_name("feeder").replace("_", "-")
        created = await client.post("/v1/suppliers", json={"supplier_id": supplier}, headers=ADMIN)
        assert created.status_code == 201, created.text
        key = {"X-Api-Key": created.json()["api_key"], "Content-Type": "text/csv"}
        first = await client.post(f"/v1/suppliers/{supplier}/feeds", content=_feed(1), headers=key)
        assert first.status_code == 201 and first.json()["accepted"] == FEED_ITEMS, first.text
        took = [await _feed_stock_arrives(client, supplier, 1, within=60)]
        victim = await _kill_later(edge.home, 0)
        second = await client.post(f"/v1/suppliers/{supplier}/feeds", content=_feed(2), headers=key)
        assert second.status_code == 201, second.text
        took.append(await _feed_stock_arrives(client, supplier, 2, within=60))
        restarted = time.monotonic()
        await _rejoined(edge, victim)  # ready again: /readyz does not wait for a feed consumer
        third = await client.post(f"/v1/suppliers/{supplier}/feeds", content=_feed(3), headers=key)
        assert third.status_code == 201, third.text
        took.append(await _feed_stock_arrives(client, supplier, 3, within=60))
        back = time.monotonic() - restarted
        port = edge.state["worker_ports"][0]
        checks = (await client.get(f"http://127.0.0.1:{port}/readyz")).json()["checks"]
    assert "inventory.stock_feed" not in checks, checks
    print(f"feed stock arrived after {[round(t, 1) for t in took]} s; worker-0 back in {back:.0f} s")


# Last: its own edge's projector joins the consumer groups the module's edge uses on the shared broker,
# and the broker re-balances them slowly when it leaves (a feed's stock could then wait on it).
def test_rate_limits_count_each_client_behind_nginx(tmp_path: Path, servers: dict[str, str]) -> None:
    """Every request reaches the workers from Nginx's address: the limit still counts each client (its
    address from X-Forwarded-For, which the workers trust from Nginx only), and a client cannot escape it
    by writing the header itself."""
    with _edge(
        tmp_path, servers, "--workers", "1", "--no-prometheus", EMPORIUM_RATE_LIMIT_ANONYMOUS="5/minute"
    ) as e:

        def client(address: str) -> httpx.Client:
            return httpx.Client(
                base_url=e.url, transport=httpx.HTTPTransport(local_address=address), timeout=10
            )

        with client("127.0.0.2") as flooder, client("127.0.0.3") as shopper:
            answers = [
                flooder.get("/v1/search", params={"q": "x"}, headers={"X-Forwarded-For": f"10.0.0.{i}"})
                for i in range(7)
            ]
            assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
            assert answers[-1].json()["status_code"] == 429 and answers[-1].headers["retry-after"]
            assert shopper.get("/v1/search", params={"q": "x"}).status_code == 200
