"""Cluster recommendations store: Apache Cassandra via cassandra-driver (2.1 through 5.x).

URL: ``cassandra://[USER:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/KEYSPACE`` with optional query params

* ``protocol_version`` (default 3: the newest one Cassandra 2.1 speaks; 4.x and 5.x still accept it);
* ``replication`` for a keyspace this store creates: ``SimpleStrategy:RF`` (default ``SimpleStrategy:1``)
  or ``NetworkTopologyStrategy:DC1=RF,DC2=RF``; an existing keyspace is never altered;
* ``consistency`` (default ``LOCAL_QUORUM``), ``serial_consistency`` (default ``LOCAL_SERIAL``),
  ``local_dc`` (token- and DC-aware routing), ``timeout`` (seconds per request, default 10).

Schema (CQL accepted unchanged by 2.1 and 4.x/5.x: no JSON, no frozen collections, no date types)::

    CREATE TABLE recommendations (user_id text PRIMARY KEY, product_ids list<text>, model text,
                                  revision bigint, generated_at timestamp)
    CREATE TABLE related_products (product_id text PRIMARY KEY, <the same columns>)
    CREATE TABLE popular_products (region text PRIMARY KEY, <the same columns>)

Cassandra refuses an empty partition key, so the every-region popularity list (region ``""``) is kept
under ``ALL_REGIONS_KEY`` (``*``, which no region id can be: they start with a letter or digit).

Why one row with a list, not one row per (user_id, rank): replacing a user's recommendations must be
atomic and leave no leftovers when the new list is shorter. With rank rows that needs a range delete
(absent in 2.1) or a partition delete plus re-insert, and the revision check would have to guard many
rows. One row is one cell set per write, guarded by one condition, read with one single-partition query.

Why compare-and-set with lightweight transactions (``IF NOT EXISTS`` / ``IF revision = ?``): Cassandra
2.1.0 rejects non-equality conditions (``IF revision < ?`` is a syntax error there), so the write is a
CAS loop: ``INSERT ... IF NOT EXISTS`` (a new user: done, one Paxos round); when the row exists, the
not-applied answer carries its current revision; if that is the same or newer the event is stale or a
repeat and nothing is written; otherwise ``UPDATE ... IF revision = <current>``, retried with the
revision the failure returns if another writer got in between. Rejected alternative: ``USING TIMESTAMP
<revision>`` (last-write-wins without Paxos) is cheaper, but any write that ever carries a wall-clock
timestamp (an operator's cqlsh fix, a GDPR delete) would shadow every later projection for good.

cassandra-driver is synchronous with callback futures: ``_execute`` bridges a ``ResponseFuture`` to an
asyncio future (callbacks run on the driver's I/O thread and hand over with ``call_soon_threadsafe``).
Every statement is prepared once at start.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

from read_models.recommendations.port import (
    PopularProducts,
    Recommendations,
    RecommendationsStoreError,
    RelatedProducts,
    is_current,
)

Ranked = Recommendations | RelatedProducts | PopularProducts

DEFAULT_PORT = 9042
DEFAULT_PROTOCOL_VERSION = 3
TABLE = "recommendations"
# entity kind -> (table, key column); every table has the same value columns
TABLES = {
    "user": (TABLE, "user_id"),
    "related": ("related_products", "product_id"),
    "popular": ("popular_products", "region"),
}
ALL_REGIONS_KEY = "*"
MAX_IN_FLIGHT = 64  # concurrent CAS writes per batch (each one is a few Paxos round trips)
MAX_CAS_ATTEMPTS = 20
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")


class CassandraConfig(msgspec.Struct, kw_only=True, frozen=True):
    hosts: tuple[str, ...]
    port: int = DEFAULT_PORT
    keyspace: str
    protocol_version: int = DEFAULT_PROTOCOL_VERSION
    replication: dict[str, str]
    consistency: str = "LOCAL_QUORUM"
    serial_consistency: str = "LOCAL_SERIAL"
    local_dc: str | None = None
    timeout_s: float = 10.0
    username: str | None = None
    password: str | None = None

    def replication_cql(self) -> str:
        return "{" + ", ".join(f"'{k}': '{v}'" for k, v in self.replication.items()) + "}"


def _parse_replication(value: str) -> dict[str, str]:
    strategy, _, factors = value.partition(":")
    if strategy == "SimpleStrategy" and factors.isdigit() and int(factors) > 0:
        return {"class": "SimpleStrategy", "replication_factor": factors}
    if strategy == "NetworkTopologyStrategy" and factors:
        replication = {"class": "NetworkTopologyStrategy"}
        for part in factors.split(","):
            dc, _, rf = part.partition("=")
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", dc) or not rf.isdigit() or int(rf) < 1:
                raise ValueError(f"bad replication entry {part!r}: want DC=RF")
            replication[dc] = rf
        return replication
    raise ValueError(
        f"bad replication {value!r}: want SimpleStrategy:RF or NetworkTopologyStrategy:DC1=RF,DC2=RF"
    )


def parse_cassandra_url(url: str) -> CassandraConfig:
    """``cassandra://...`` -> config; a ValueError names what is wrong (bad URLs fail at start)."""
    parts = urlsplit(url)
    if parts.scheme != "cassandra":
        raise ValueError(f"not a cassandra:// URL: {url!r}")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    hosts: list[str] = []
    ports: set[int] = set()
    for item in hostlist.split(","):
        host, _, port = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "")
        if not host:
            raise ValueError(f"cassandra URL without a host: {url!r}")
        hosts.append(host)
        ports.add(int(port) if port else DEFAULT_PORT)
    if len(ports) != 1:
        raise ValueError(f"all cassandra hosts must use the same port: {url!r}")
    keyspace = parts.path.strip("/")
    if not _NAME.fullmatch(keyspace):
        raise ValueError(f"cassandra URL needs a keyspace name ([A-Za-z][A-Za-z0-9_]*, <= 48 chars): {url!r}")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {
        "protocol_version",
        "replication",
        "consistency",
        "serial_consistency",
        "local_dc",
        "timeout",
    }
    if unknown:
        raise ValueError(f"unknown cassandra URL parameter(s): {', '.join(sorted(unknown))}")
    username = password = None
    if userinfo:
        user, _, secret = userinfo.partition(":")
        username, password = unquote(user), unquote(secret)
    return CassandraConfig(
        hosts=tuple(hosts),
        port=ports.pop(),
        keyspace=keyspace,
        protocol_version=int(query.get("protocol_version", DEFAULT_PROTOCOL_VERSION)),
        replication=_parse_replication(query.get("replication", "SimpleStrategy:1")),
        consistency=query.get("consistency", "LOCAL_QUORUM").upper(),
        serial_consistency=query.get("serial_consistency", "LOCAL_SERIAL").upper(),
        local_dc=query.get("local_dc"),
        timeout_s=float(query.get("timeout", 10.0)),
        username=username,
        password=password,
    )


def _utc(moment: datetime | None) -> datetime | None:
    """The driver reads ``timestamp`` columns as naive UTC datetimes (millisecond precision)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class CassandraRecommendationsStore:
    def __init__(self, url: str) -> None:
        self.config = parse_cassandra_url(url)
        self._cluster: Any = None
        self._session: Any = None
        self._statements: dict[str, Any] = {}
        self._limit = asyncio.Semaphore(MAX_IN_FLIGHT)

    # lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._session is not None:
            return
        try:
            await asyncio.to_thread(self._connect)
        except RecommendationsStoreError:
            raise
        except Exception as exc:
            await self.close()
            raise RecommendationsStoreError(
                f"cassandra {','.join(self.config.hosts)}:{self.config.port}: {exc!r}"
            ) from exc

    def _connect(self) -> None:
        """Blocking: connect, create keyspace and table if missing, prepare statements."""
        from cassandra import ConsistencyLevel
        from cassandra.auth import PlainTextAuthProvider
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
        from cassandra.query import dict_factory

        cfg = self.config
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=cfg.local_dc)),
            consistency_level=ConsistencyLevel.name_to_value[cfg.consistency],
            serial_consistency_level=ConsistencyLevel.name_to_value[cfg.serial_consistency],
            request_timeout=cfg.timeout_s,
            row_factory=dict_factory,
        )
        auth = (
            PlainTextAuthProvider(username=cfg.username, password=cfg.password or "")
            if cfg.username
            else None
        )
        self._cluster = Cluster(
            list(cfg.hosts),
            port=cfg.port,
            protocol_version=cfg.protocol_version,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            auth_provider=auth,
            connect_timeout=cfg.timeout_s,
            control_connection_timeout=cfg.timeout_s,
        )
        session = self._cluster.connect()
        ks = cfg.keyspace
        session.execute(f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {cfg.replication_cql()}")
        self._statements = {"ping": session.prepare("SELECT release_version FROM system.local")}
        columns = "product_ids, model, revision, generated_at"
        for kind, (table, key) in TABLES.items():
            session.execute(
                f"CREATE TABLE IF NOT EXISTS {ks}.{table} ({key} text PRIMARY KEY, product_ids list<text>, "
                "model text, revision bigint, generated_at timestamp)"
            )
            self._statements |= {
                f"{kind}.insert": session.prepare(
                    f"INSERT INTO {ks}.{table} ({key}, {columns}) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS"
                ),
                f"{kind}.update": session.prepare(
                    f"UPDATE {ks}.{table} SET product_ids = ?, model = ?, revision = ?, generated_at = ? "
                    f"WHERE {key} = ? IF revision = ?"
                ),
                f"{kind}.select": session.prepare(f"SELECT {columns} FROM {ks}.{table} WHERE {key} = ?"),
            }
        self._session = session

    async def close(self) -> None:
        cluster, self._cluster, self._session = self._cluster, None, None
        if cluster is not None:
            await asyncio.to_thread(cluster.shutdown)

    # async bridge --------------------------------------------------------------------------------

    async def _execute(self, name: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        session = self._session
        if session is None:
            raise RecommendationsStoreError("cassandra recommendations store is not started")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[dict[str, Any]]] = loop.create_future()

        def _settle(result: Any, error: BaseException | None) -> None:
            if done.done():  # the awaiting task was cancelled
                return
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(list(result or ()))

        def on_result(rows: Any) -> None:
            loop.call_soon_threadsafe(_settle, rows, None)

        def on_error(exc: BaseException) -> None:
            loop.call_soon_threadsafe(_settle, None, exc)

        try:
            response = session.execute_async(self._statements[name], params)
            response.add_callbacks(on_result, on_error)
            return await done
        except RecommendationsStoreError:
            raise
        except Exception as exc:  # NoHostAvailable, timeouts, Unavailable, ...: retryable
            raise RecommendationsStoreError(f"cassandra {name}: {exc!r}") from exc

    # the port ------------------------------------------------------------------------------------

    async def _put_all(self, kind: str, items: Sequence[tuple[str, Ranked]]) -> int:
        results = await asyncio.gather(*(self._put_limited(kind, key, item) for key, item in items))
        return sum(results)

    async def _put_limited(self, kind: str, key: str, item: Ranked) -> bool:
        async with self._limit:
            return await self._put(kind, key, item)

    async def _put(self, kind: str, key: str, item: Ranked) -> bool:
        """The CAS loop described in the module docstring; True when this call wrote the entry."""
        values = [list(item.product_ids), item.model, item.revision, item.generated_at]
        insert = [key, *values]
        rows = await self._execute(f"{kind}.insert", insert)
        for _ in range(MAX_CAS_ATTEMPTS):
            row = rows[0]
            if row["[applied]"]:
                return True
            current = row.get("revision")
            if current is None:  # the row vanished in between (or has no revision): insert afresh
                rows = await self._execute(f"{kind}.insert", insert)
            elif current >= item.revision:
                return False  # stale or a repeat: the store already holds this or newer
            else:
                rows = await self._execute(f"{kind}.update", [*values, key, current])
        raise RecommendationsStoreError(
            f"cassandra: {kind} {key!r} still contended after {MAX_CAS_ATTEMPTS} attempts"
        )

    async def _get(self, kind: str, key: str) -> dict[str, Any] | None:
        rows = await self._execute(f"{kind}.select", [key])
        if not rows:
            return None
        row = rows[0]
        return {
            "product_ids": tuple(row["product_ids"] or ()),  # Cassandra stores an empty list as null
            "model": row["model"] or "",
            "revision": row["revision"] or 0,
            "generated_at": _utc(row["generated_at"]),
        }

    async def put_many(self, items: Sequence[Recommendations]) -> int:
        return await self._put_all("user", [(item.user_id, item) for item in items])

    async def get(self, user_id: str) -> Recommendations | None:
        """The user's row and the every-region popularity row, read at once (two partitions)."""
        found, popular = await asyncio.gather(
            self._get("user", user_id), self._get("popular", ALL_REGIONS_KEY)
        )
        if found is None:
            return None
        own = Recommendations(user_id=user_id, **found)
        everywhere = None if popular is None else PopularProducts(region="", **popular)
        return own if is_current(own, everywhere) else None

    async def put_related(self, items: Sequence[RelatedProducts]) -> int:
        return await self._put_all("related", [(item.product_id, item) for item in items])

    async def get_related(self, product_id: str) -> RelatedProducts | None:
        found = await self._get("related", product_id)
        return None if found is None else RelatedProducts(product_id=product_id, **found)

    async def put_popular(self, items: Sequence[PopularProducts]) -> int:
        return await self._put_all("popular", [(item.region or ALL_REGIONS_KEY, item) for item in items])

    async def get_popular(self, region: str) -> PopularProducts | None:
        found = await self._get("popular", region or ALL_REGIONS_KEY)
        return None if found is None else PopularProducts(region=region, **found)

    async def ping(self) -> None:
        await self._execute("ping", [])
