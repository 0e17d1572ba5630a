"""Where an adapter is chosen: one table per port, URL scheme -> constructor.

Every port has one URL setting (``Settings.<port>_url``, env ``EMPORIUM_<PORT>_URL``); its scheme picks the
adapter. Each adapter module is imported only when its scheme is chosen, so a command that needs the
event log never loads the Elasticsearch or Cassandra drivers. Constructors do no I/O: the container
starts what it created (``Port.start``) and closes it (``Port.close``) in reverse order.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

from kernel.database import MysqlTarget, SqliteTarget, parse_database_url
from kernel.settings import env_var

if TYPE_CHECKING:
    from commerce.cart_cache import CartCache
    from commerce.port import CommerceStore
    from ingest.store import IngestStore
    from inventory.cluster import ClusterEngine
    from inventory.sqlite import SqliteEngine
    from kernel.eventlog.port import EventLog
    from kernel.http.limits import LimitsStorage
    from read_models.homepage.port import HomepageCache
    from read_models.orders.port import OrdersStore
    from read_models.recommendations.port import RecommendationsStore
    from read_models.trending.port import TrendingStore
    from search.out_of_stock import OutOfStockSet
    from search.port import RebuildableSearchIndex

    InventoryEngine = ClusterEngine | SqliteEngine

AdapterT = TypeVar("AdapterT")


class AdapterConfigError(ValueError):
    """A port's URL names no adapter, or a combination of URLs that cannot work."""


async def _nothing_to_start(_: object) -> None:
    return None


async def _close(adapter: Any) -> None:
    await adapter.close()


async def _start(adapter: Any) -> None:
    await adapter.start()


@dataclass(frozen=True)
class Port(Generic[AdapterT]):
    """One port: the setting holding its URL and the adapter constructor for each accepted scheme."""

    name: str
    setting: str
    examples: str
    constructors: Mapping[str, Callable[..., AdapterT]]
    start: Callable[[AdapterT], Awaitable[None]] = _start
    close: Callable[[AdapterT], Awaitable[None]] = _close

    @property
    def env_var(self) -> str:
        return env_var(self.setting)

    @property
    def schemes(self) -> tuple[str, ...]:
        return tuple(self.constructors)

    def open(self, url: str, **options: Any) -> AdapterT:
        """The adapter for ``url``, not yet connected; ``options`` go to its constructor.

        The error names the scheme, never the whole URL: it may carry a password.
        """
        scheme = urlsplit(url).scheme.lower()
        constructor = self.constructors.get(scheme)
        if constructor is None:
            given = f"URL scheme {scheme!r}" if scheme else "URL without a scheme"
            raise AdapterConfigError(
                f"{self.name}: unsupported {given} in {self.env_var}; accepted schemes: "
                f"{', '.join(self.schemes)} (e.g. {self.examples})"
            )
        return constructor(url, **options)


# Event log -------------------------------------------------------------------------------------


def _sqlite_event_log(url: str, *, client_id: str = "emporium", **options: Any) -> EventLog:
    from kernel.eventlog.sqlite import SqliteEventLog

    return SqliteEventLog.from_url(url, **options)


def _kafka_event_log(url: str, *, client_id: str = "emporium", **options: Any) -> EventLog:
    from kernel.eventlog.kafka import KafkaEventLog

    return KafkaEventLog.from_url(url, client_id=client_id, **options)


EVENT_LOG: Port[EventLog] = Port(
    name="event log",
    setting="event_log_url",
    examples="sqlite:///PATH, kafka://HOST:PORT[,HOST:PORT]",
    constructors={"sqlite": _sqlite_event_log, "kafka": _kafka_event_log},
)


# Search index ----------------------------------------------------------------------------------

DEFAULT_INDEX_NAME = "products"
_INDEX_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,200}$")


def _index_name(query: str) -> str:
    """``index=NAME`` names the alias (Elasticsearch) or pointer (Tantivy) and prefixes physical indexes."""
    options = {key: values[-1] for key, values in parse_qs(query).items()}
    name = options.pop("index", DEFAULT_INDEX_NAME)
    if not _INDEX_NAME.match(name):
        raise AdapterConfigError(f"bad index name {name!r}: lowercase letters, digits, '_', '-', '.'")
    if options:
        raise AdapterConfigError(f"unknown search URL options: {', '.join(sorted(options))}")
    return name


def _tantivy(url: str) -> RebuildableSearchIndex:
    """``tantivy:///ABS/PATH`` or ``tantivy://REL/PATH``: the embedded index under that folder."""
    from search.tantivy import TantivySearchIndex

    parts = urlsplit(url)
    name = _index_name(parts.query)
    path = (parts.netloc + parts.path) if parts.netloc else parts.path
    if not path:
        raise AdapterConfigError(
            f"tantivy URL needs a folder: {url!r} (e.g. tantivy:///var/lib/emporium/search)"
        )
    return TantivySearchIndex(Path(path), name)


def _elasticsearch(url: str) -> RebuildableSearchIndex:
    """``http(s)://[USER:PASS@]HOST:PORT[,HOST:PORT]`` or ``elasticsearch://HOST:PORT`` (plain http)."""
    from search.elasticsearch import ElasticsearchSearchIndex

    parts = urlsplit(url)
    name = _index_name(parts.query)
    if not parts.hostname:
        raise AdapterConfigError(f"search URL needs a host: {url!r}")
    scheme = parts.scheme.lower()
    http = "http" if scheme == "elasticsearch" else scheme
    userinfo, _, hosts = parts.netloc.rpartition("@")
    prefix = f"{userinfo}@" if userinfo else ""
    return ElasticsearchSearchIndex([f"{http}://{prefix}{host}" for host in hosts.split(",")], name)


async def _ensure_index(index: RebuildableSearchIndex) -> None:
    await index.ensure_index()


SEARCH_INDEX: Port[RebuildableSearchIndex] = Port(
    name="search index",
    setting="search_url",
    examples="tantivy:///PATH, http(s)://HOST:PORT; option ?index=NAME",
    constructors={
        "tantivy": _tantivy,
        "http": _elasticsearch,
        "https": _elasticsearch,
        "elasticsearch": _elasticsearch,
    },
    start=_ensure_index,
)


# Out-of-stock set (the cache URL) --------------------------------------------------------------


def _memory_out_of_stock(url: str) -> OutOfStockSet:
    from search.out_of_stock import MemoryOutOfStockSet

    return MemoryOutOfStockSet()


def _redis_out_of_stock(url: str) -> OutOfStockSet:
    from search.out_of_stock import RedisOutOfStockSet

    return RedisOutOfStockSet.from_url(url)


OUT_OF_STOCK_SET: Port[OutOfStockSet] = Port(
    name="out-of-stock set",
    setting="cache_url",
    examples="memory://, redis://HOST:PORT/DB",
    constructors={
        "memory": _memory_out_of_stock,
        "redis": _redis_out_of_stock,
        "rediss": _redis_out_of_stock,
    },
    start=_nothing_to_start,
)


# Homepage cache (the cache URL) -----------------------------------------------------------------


def _memory_homepage(url: str) -> HomepageCache:
    from read_models.homepage.memory import MemoryHomepageCache

    return MemoryHomepageCache()


def _redis_homepage(url: str) -> HomepageCache:
    from read_models.homepage.redis import RedisHomepageCache

    return RedisHomepageCache.from_url(url)


HOMEPAGE_CACHE: Port[HomepageCache] = Port(
    name="homepage cache",
    setting="cache_url",
    examples="memory://, redis://HOST:PORT/DB",
    constructors={"memory": _memory_homepage, "redis": _redis_homepage, "rediss": _redis_homepage},
    start=_nothing_to_start,
)


# Cart cache (the cache URL) -------------------------------------------------------------------


def _memory_carts(url: str) -> CartCache:
    from commerce.cart_cache import MemoryCartCache

    return MemoryCartCache()


def _redis_carts(url: str) -> CartCache:
    from commerce.cart_cache_redis import RedisCartCache

    return RedisCartCache.from_url(url)


CART_CACHE: Port[CartCache] = Port(
    name="cart cache",
    setting="cache_url",
    examples="memory://, redis://HOST:PORT/DB",
    constructors={"memory": _memory_carts, "redis": _redis_carts, "rediss": _redis_carts},
    start=_nothing_to_start,
)


# Rate limit counters (the cache URL) -----------------------------------------------------------


def _memory_rate_limits(url: str) -> LimitsStorage:
    """In process: the synchronous storage (it never blocks; see kernel.http.limits)."""
    from kernel.http.limits import InProcessStorage

    return InProcessStorage()


def _redis_rate_limits(url: str) -> LimitsStorage:
    """The ``limits`` Redis storage over redis.asyncio (atomic Lua counters shared by every worker),
    its per-request calls sent many per round trip."""
    from kernel.http.limits_redis import BatchedRedisStorage

    return BatchedRedisStorage(f"async+{url}")


async def _close_rate_limits(storage: LimitsStorage) -> None:
    from limits.storage import MemoryStorage

    from kernel.http.limits_redis import BatchedRedisStorage

    if isinstance(storage, BatchedRedisStorage):
        await storage.close()
    elif isinstance(storage, MemoryStorage):
        storage.timer.cancel()


RATE_LIMIT_STORAGE: Port[LimitsStorage] = Port(
    name="rate limit storage",
    setting="cache_url",
    examples="memory://, redis://HOST:PORT/DB",
    constructors={"memory": _memory_rate_limits, "redis": _redis_rate_limits, "rediss": _redis_rate_limits},
    start=_nothing_to_start,
    close=_close_rate_limits,
)


# Relational database (SQLite or MySQL): the ingest store and the inventory engine ---------------

_MYSQL_SCHEMES = ("mysql", "mariadb", "mysql+pymysql")
_REDIS_SCHEMES = ("redis", "rediss", "unix")
_RELATIONAL_EXAMPLES = "sqlite:///PATH, mysql://USER:PASS@HOST:PORT/DB"


def _relational(
    sqlite: Callable[..., AdapterT], mysql: Callable[..., AdapterT]
) -> dict[str, Callable[..., AdapterT]]:
    """A port on the relational database: its SQLite constructor, and its MySQL one under every scheme."""
    return {"sqlite": sqlite, **dict.fromkeys(_MYSQL_SCHEMES, mysql)}


def _sqlite_target(url: str) -> SqliteTarget:
    target = parse_database_url(url)
    assert isinstance(target, SqliteTarget)  # the scheme chose this constructor
    return target


def _mysql_target(url: str) -> MysqlTarget:
    target = parse_database_url(url)
    assert isinstance(target, MysqlTarget)  # the scheme chose this constructor
    return target


def _sqlite_ingest_store(url: str) -> IngestStore:
    from ingest.store_dialects import SqliteIngestStore

    return SqliteIngestStore(_sqlite_target(url))


def _mysql_ingest_store(url: str) -> IngestStore:
    from ingest.store_dialects import MysqlIngestStore

    return MysqlIngestStore(_mysql_target(url))


INGEST_STORE: Port[IngestStore] = Port(
    name="ingest store",
    setting="database_url",
    examples=_RELATIONAL_EXAMPLES,
    constructors=_relational(_sqlite_ingest_store, _mysql_ingest_store),
)


def _sqlite_engine(url: str, *, cache_url: str, **options: Any) -> InventoryEngine:
    """The embedded engine: SQLite alone (the cache URL is not needed)."""
    from inventory.sqlite import SqliteEngine

    return SqliteEngine(_sqlite_target(url).path, **options)


def _cluster_engine(url: str, *, cache_url: str, **options: Any) -> InventoryEngine:
    """Redis fast path + MySQL truth. MySQL with an in-process cache is refused: MySQL alone is the slow
    path this design exists to avoid, and a per-process cache cannot be shared by several API servers."""
    if urlsplit(cache_url).scheme not in _REDIS_SCHEMES:
        raise AdapterConfigError(
            f"inventory on MySQL needs a Redis fast path: set {env_var('cache_url')}=redis://HOST:PORT/DB "
            f"(got {cache_url!r}), or use a sqlite:/// database for the embedded engine"
        )
    from inventory.cluster import ClusterEngine

    return ClusterEngine(cache_url, _mysql_target(url), **options)


INVENTORY_ENGINE: Port[InventoryEngine] = Port(
    name="inventory engine",
    setting="database_url",
    examples="sqlite:///PATH, or mysql://USER:PASS@HOST:PORT/DB with a redis:// cache URL",
    constructors=_relational(_sqlite_engine, _cluster_engine),
)


# Commerce store: carts, wishlists, checkouts (the relational database) -------------------------


def _sqlite_commerce_store(url: str) -> CommerceStore:
    from commerce.sqlite import SqliteCommerceStore

    return SqliteCommerceStore(_sqlite_target(url).path)


def _mysql_commerce_store(url: str) -> CommerceStore:
    from commerce.mysql import MysqlCommerceStore

    return MysqlCommerceStore(_mysql_target(url))


COMMERCE_STORE: Port[CommerceStore] = Port(
    name="commerce store",
    setting="database_url",
    examples=_RELATIONAL_EXAMPLES,
    constructors=_relational(_sqlite_commerce_store, _mysql_commerce_store),
)


# Orders read model (the relational database) -----------------------------------------------------


def _sqlite_orders(url: str) -> OrdersStore:
    from read_models.orders.sql import SqliteOrdersStore

    return SqliteOrdersStore(_sqlite_target(url).path)


def _mysql_orders(url: str) -> OrdersStore:
    from read_models.orders.sql import MysqlOrdersStore

    return MysqlOrdersStore(_mysql_target(url))


ORDERS_STORE: Port[OrdersStore] = Port(
    name="orders store",
    setting="database_url",
    examples=_RELATIONAL_EXAMPLES,
    constructors=_relational(_sqlite_orders, _mysql_orders),
)


# Recommendations store -------------------------------------------------------------------------


def _sqlite_recommendations(url: str) -> RecommendationsStore:
    from read_models.recommendations.sqlite import SqliteRecommendationsStore

    return SqliteRecommendationsStore(_sqlite_target(url).path)


def _cassandra_recommendations(url: str) -> RecommendationsStore:
    from read_models.recommendations.cassandra import CassandraRecommendationsStore

    return CassandraRecommendationsStore(url)


RECOMMENDATIONS_STORE: Port[RecommendationsStore] = Port(
    name="recommendations store",
    setting="recommendations_url",
    examples="sqlite:///PATH, cassandra://HOST:PORT/KEYSPACE",
    constructors={"sqlite": _sqlite_recommendations, "cassandra": _cassandra_recommendations},
)


# Trending store (the cache URL) ----------------------------------------------------------------


def _memory_trending(url: str) -> TrendingStore:
    from read_models.trending.memory import MemoryTrendingStore

    return MemoryTrendingStore()


def _redis_trending(url: str) -> TrendingStore:
    from read_models.trending.redis import RedisTrendingStore

    return RedisTrendingStore.from_url(url)


TRENDING_STORE: Port[TrendingStore] = Port(
    name="trending store",
    setting="cache_url",
    examples="memory://, redis://HOST:PORT/DB",
    constructors={"memory": _memory_trending, "redis": _redis_trending, "rediss": _redis_trending},
)

PORTS: tuple[Port[Any], ...] = (
    EVENT_LOG,
    SEARCH_INDEX,
    OUT_OF_STOCK_SET,
    HOMEPAGE_CACHE,
    CART_CACHE,
    RATE_LIMIT_STORAGE,
    INGEST_STORE,
    INVENTORY_ENGINE,
    COMMERCE_STORE,
    ORDERS_STORE,
    RECOMMENDATIONS_STORE,
    TRENDING_STORE,
)
