"""Readiness probes: one real request per service through the client the app itself uses. Each raises
on failure and returns a short description of what answered.

The clients are imported inside the probes: every ``emporium`` command imports this package (for
``emporium services``), and should not pay for loading all five clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from infra.local.services import CASSANDRA_PROTOCOL_VERSION, StackError

T = TypeVar("T")


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on a fresh event loop in a worker thread, so a probe also works when its
    caller is inside a running event loop (an async test or fixture)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stack-probe") as pool:
        return pool.submit(asyncio.run, coroutine).result()


def probe_redis(url: str, timeout: float) -> str:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        if not client.ping():
            raise StackError(f"redis at {url} did not answer PING")
        return f"redis {client.info('server').get('redis_version', '?')}"
    finally:
        client.close()


def probe_mysql(url: str, timeout: float) -> str:
    """``SELECT 1`` as the app user: MariaDB counts as ready once its init file has created it."""
    import pymysql

    from kernel.database import MysqlTarget, parse_database_url

    target = parse_database_url(url)
    if not isinstance(target, MysqlTarget):
        raise StackError(f"{url!r} is not a mysql:// URL")
    seconds = max(1, int(timeout))
    connection = pymysql.connect(**target.pymysql_kwargs(), connect_timeout=seconds, read_timeout=seconds)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1, VERSION()")
            row = cursor.fetchone()
        if not row or row[0] != 1:
            raise StackError(f"mysql at {url}: SELECT 1 returned {row!r}")
        return f"mysql {row[1]}"
    finally:
        connection.close()


async def _kafka_brokers(url: str, request_timeout: float) -> list[dict[str, Any]]:
    from aiokafka.admin import AIOKafkaAdminClient

    host, port = _host_port(url, 9092)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=f"{host}:{port}",
        client_id="emporium-stack",
        request_timeout_ms=max(500, int(request_timeout * 1000)),
    )
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
    finally:
        await admin.close()
    return list(cluster.get("brokers") or [])


def probe_kafka(url: str, timeout: float) -> str:
    """Fetch the cluster metadata and require at least one broker in it."""
    brokers = _run_coroutine(_kafka_brokers(url, timeout))
    if not brokers:
        raise StackError(f"kafka at {url}: metadata lists no broker")
    broker = min(brokers, key=lambda b: b["node_id"])
    return f"kafka broker {broker['host']}:{broker['port']}"


def probe_elasticsearch(url: str, timeout: float) -> str:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(url, request_timeout=timeout, max_retries=0, retry_on_timeout=False)
    try:
        version = client.info().body.get("version", {}).get("number")
    finally:
        client.close()
    if not version:
        raise StackError(f"elasticsearch at {url}: GET / reports no version")
    return f"elasticsearch {version}"


def probe_cassandra(url: str, timeout: float) -> str:
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    host, port = _host_port(url, 9042)
    query = parse_qs(urlsplit(url).query)
    protocol_version = int(query.get("protocol_version", [str(CASSANDRA_PROTOCOL_VERSION)])[0])
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=timeout)
    cluster = Cluster(
        [host],
        port=port,
        protocol_version=protocol_version,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=timeout,
        control_connection_timeout=timeout,
    )
    try:
        row = cluster.connect().execute("SELECT release_version FROM system.local").one()
        if row is None:
            raise StackError(f"cassandra at {url}: system.local is empty")
        return f"cassandra {row.release_version}"
    finally:
        cluster.shutdown()


def probe_spark(url: str, timeout: float) -> str:
    """A master's web UI (``http://``): alive with at least one alive worker. A ``spark://`` URL (an
    external master, whose UI port is unknown): its RPC port accepts connections."""
    import socket

    import httpx

    if url.startswith("spark://"):
        host, port = _host_port(url, 7077)
        with socket.create_connection((host, port), timeout=timeout):
            return f"spark master {host}:{port} accepts connections"
    state = httpx.get(f"{url.rstrip('/')}/json/", timeout=timeout).raise_for_status().json()
    workers = [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]
    if state.get("status") != "ALIVE" or not workers:
        raise StackError(f"spark master at {url}: status {state.get('status')}, {len(workers)} alive workers")
    cores = sum(w.get("cores", 0) for w in workers)
    return f"spark master {state.get('url')} with {len(workers)} worker(s), {cores} cores"


PROBES: dict[str, Callable[[str, float], str]] = {
    "redis": probe_redis,
    "mariadb": probe_mysql,
    "kafka": probe_kafka,
    "elasticsearch": probe_elasticsearch,
    "cassandra": probe_cassandra,
    "spark": probe_spark,
}


def probe(service: str, url: str, timeout: float = 3.0) -> str:
    """Make one real request to ``service`` at ``url``; raise if it does not answer."""
    return PROBES[service](url, timeout)
