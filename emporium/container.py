"""The composition root: settings in, adapters out, every one closed in reverse order at the end.

Use it in two steps: ask for what the command needs (each adapter is created on first request, with no
I/O), then enter the container, which starts them in that order; background services (modules, projector
tasks) started through ``start`` stop before the adapters they use close::

    container = Container(settings, client_id="emporium-rebuild")
    index, stock = container.search_index(), container.out_of_stock_set()
    async with container:
        await rebuild_search(container.runtime, index=index, stock=stock)

Nothing else opens an adapter: the app lifespan, every CLI command and the benchmarks come here.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import structlog
from prometheus_client import CollectorRegistry

from emporium.adapters import (
    CART_CACHE,
    COMMERCE_STORE,
    EVENT_LOG,
    HOMEPAGE_CACHE,
    INGEST_STORE,
    INVENTORY_ENGINE,
    ORDERS_STORE,
    OUT_OF_STOCK_SET,
    RATE_LIMIT_STORAGE,
    RECOMMENDATIONS_STORE,
    SEARCH_INDEX,
    TRENDING_STORE,
    Port,
)
from ingest.auth import load_key_secret
from ingest.service import IngestService
from kernel.eventlog.retention import retention_policy
from kernel.runtime import Runtime
from kernel.settings import Settings

if TYPE_CHECKING:
    from commerce.cart_cache import CartCache
    from commerce.port import CommerceStore
    from emporium.adapters import InventoryEngine
    from ingest.store import IngestStore
    from kernel.eventlog.port import EventLog
    from kernel.http.limits import LimitsStorage
    from read_models.homepage.port import HomepageCache
    from read_models.orders.port import OrdersStore
    from read_models.recommendations.port import RecommendationsStore
    from read_models.trending.port import TrendingStore
    from search.out_of_stock import OutOfStockSet
    from search.port import RebuildableSearchIndex

log = structlog.get_logger(__name__)

AdapterT = TypeVar("AdapterT")
ServiceT = TypeVar("ServiceT", bound="Service")


class Service(Protocol):
    """Something that runs between start and stop: a feature module, a projector task, a consumer."""

    def start(self) -> Awaitable[None] | None: ...

    async def stop(self) -> None: ...


class Container:
    """Settings -> adapters from the registry (``emporium.adapters``), under one ``AsyncExitStack``."""

    def __init__(
        self,
        settings: Settings,
        *,
        client_id: str = "emporium",
        metrics: CollectorRegistry | None = None,
        inventory_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self.metrics = metrics if metrics is not None else CollectorRegistry()
        # Engine knobs (e.g. sweep_interval=None for a one-shot CLI command, a test clock).
        self.inventory_options = dict(inventory_options or {})
        self._adapters: dict[str, tuple[Port[Any], Any]] = {}  # port name -> (port, adapter), creation order
        self._stack: AsyncExitStack | None = None
        self._runtime: Runtime | None = None
        self._key_secret: bytes | None = None

    # adapters, created on first request ---------------------------------------------------------

    def _adapter(self, port: Port[AdapterT], **options: Any) -> AdapterT:
        created = self._adapters.get(port.name)
        if created is not None:
            adapter: AdapterT = created[1]
            return adapter
        if self._stack is not None:
            raise RuntimeError(
                f"{port.name} requested after the container started: ask for it before entering"
            )
        adapter = port.open(getattr(self.settings, port.setting), **options)
        self._adapters[port.name] = (port, adapter)
        return adapter

    def event_log(self) -> EventLog:
        settings = self.settings
        retention = retention_policy(settings.event_log_retention_s, settings.event_log_retention_bytes)
        return self._adapter(EVENT_LOG, client_id=self.client_id, retention=retention)

    def search_index(self) -> RebuildableSearchIndex:
        return self._adapter(SEARCH_INDEX)

    def out_of_stock_set(self) -> OutOfStockSet:
        return self._adapter(OUT_OF_STOCK_SET)

    def homepage_cache(self) -> HomepageCache:
        return self._adapter(HOMEPAGE_CACHE)

    def ingest_store(self) -> IngestStore:
        return self._adapter(INGEST_STORE)

    def inventory_engine(self) -> InventoryEngine:
        return self._adapter(INVENTORY_ENGINE, cache_url=self.settings.cache_url, **self.inventory_options)

    def commerce_store(self) -> CommerceStore:
        return self._adapter(COMMERCE_STORE)

    def cart_cache(self) -> CartCache:
        return self._adapter(CART_CACHE)

    def orders_store(self) -> OrdersStore:
        return self._adapter(ORDERS_STORE)

    def recommendations_store(self) -> RecommendationsStore:
        return self._adapter(RECOMMENDATIONS_STORE)

    def trending_store(self) -> TrendingStore:
        return self._adapter(TRENDING_STORE)

    def rate_limit_storage(self) -> LimitsStorage:
        return self._adapter(RATE_LIMIT_STORAGE)

    @property
    def key_secret(self) -> bytes:
        """The server secret of API key hashes (``EMPORIUM_KEY_SECRET``, or kept in the data dir)."""
        if self._key_secret is None:
            self._key_secret = load_key_secret(self.settings.key_secret, self.settings.data_dir)
        return self._key_secret

    @property
    def runtime(self) -> Runtime:
        """What every feature module shares: settings, the event log and the metrics registry."""
        if self._runtime is None:
            self._runtime = Runtime(settings=self.settings, event_log=self.event_log(), metrics=self.metrics)
        return self._runtime

    # lifecycle ----------------------------------------------------------------------------------

    async def __aenter__(self) -> Container:
        if self._stack is not None:
            raise RuntimeError("the container is already started")
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        async with AsyncExitStack() as stack:
            for port, adapter in self._adapters.values():
                await port.start(adapter)
                stack.push_async_callback(port.close, adapter)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(exc_type, exc, traceback)

    async def start(self, service: ServiceT) -> ServiceT:
        """Start ``service`` now and stop it at exit, before the adapters close (a failing stop is logged)."""
        if self._stack is None:
            raise RuntimeError("enter the container before starting services")
        started = service.start()
        if inspect.isawaitable(started):
            await started
        self._stack.push_async_callback(_stop_logged, service)
        return service


async def _stop_logged(service: Service) -> None:
    try:
        await service.stop()
    except Exception:
        log.exception("stop failed", service=getattr(service, "name", type(service).__name__))


@asynccontextmanager
async def ingest_service(
    settings: Settings, *, client_id: str = "emporium-ingest"
) -> AsyncIterator[IngestService]:
    """The ingest service over a started event log and ingest store (CLI commands, the demo, benchmarks)."""
    container = Container(settings, client_id=client_id)
    service = IngestService(container.ingest_store(), container.event_log(), key_secret=container.key_secret)
    async with container:
        yield service
