"""Litestar app factory: routes from every module, ops endpoints, OpenAPI, metrics, lifecycle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import structlog
from litestar import Litestar, Response, get
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from analytics.archive.module import ArchiveModule
from commerce.api import COMMERCE_ERRORS
from commerce.module import CommerceModule
from emporium.access import document_rate_limits, engine_counts_limits, hold_policy, in_group, rate_limiter
from emporium.container import Container
from emporium.docs_ui import assets_router, render_plugins
from emporium.holds import InventoryHolds
from emporium.sales import catalog_lookup
from emporium.web import storefront_page
from ingest.api import INGEST_ERRORS
from ingest.module import IngestModule
from inventory.api import INVENTORY_ERRORS
from inventory.module import InventoryModule
from inventory.sales import SalesRecorder
from kernel import __version__
from kernel.activity import ActivityMetrics, ActivityPublisher
from kernel.http.callers import identify_opt
from kernel.http.errors import exception_handlers
from kernel.http.limits import LIMIT_ERRORS, RateLimiter, rate_limit_exempt_opt, rate_limit_group_opt
from kernel.observability import HttpMetrics
from kernel.runtime import Module, ReadinessCheck
from kernel.settings import Settings
from read_models.api import READ_MODEL_ERRORS
from read_models.availability import AvailabilityUnavailable, SoldOutProducts
from read_models.homepage.api import HOMEPAGE_ERRORS
from read_models.homepage.module import HomepageModule
from read_models.homepage.service import Freshness
from read_models.module import ReadModelsModule, TrendingModule
from read_models.orders.api import ORDERS_ERRORS
from read_models.orders.module import OrdersModule
from read_models.trending_api import TRENDING_ERRORS
from search.api import SEARCH_ERRORS
from search.module import SearchModule
from search.out_of_stock import OutOfStockSet, sold_out_products

log = structlog.get_logger(__name__)

READINESS_TIMEOUT_S = 2.0


async def _run_check(name: str, check: ReadinessCheck) -> tuple[str, str]:
    try:
        await asyncio.wait_for(check(), READINESS_TIMEOUT_S)
    except Exception as exc:
        return name, f"down: {exc!r}"[:300]
    return name, "ok"


def sold_out_of(stock: OutOfStockSet) -> SoldOutProducts:
    """The read models' stock question, answered by search's live out-of-stock set (contexts do not
    import each other; they meet here)."""

    async def sold_out(product_ids: Sequence[str], /) -> set[str]:
        try:
            return await sold_out_products(stock, product_ids)
        except Exception as exc:  # Redis down: the recommendation routes answer a retryable 503
            raise AvailabilityUnavailable(repr(exc)) from exc

    return sold_out


def build_modules(container: Container, limiter: RateLimiter | None = None) -> list[Module]:
    """Every feature module over its adapters, in start order: inventory before search, whose stock
    model reads its events; search before the read models, whose answers its out-of-stock set filters."""
    runtime = container.runtime
    engine = container.inventory_engine()
    holds = hold_policy(container.settings, limiter)  # reservations and checkouts share the units cap
    index, stock = container.search_index(), container.out_of_stock_set()
    sold_out = sold_out_of(stock)
    settings = container.settings
    activity = ActivityMetrics.of(runtime.metrics)
    sales = SalesRecorder(
        ActivityPublisher(runtime.event_log, metrics=activity, producer="inventory"),
        catalog_lookup(index, stock),
    )
    return [
        IngestModule(
            runtime,
            store=container.ingest_store(),
            key_secret=container.key_secret,
            stock_writer=engine,  # stock feeds
        ),
        InventoryModule(runtime, engine=engine, holds=holds, sales=sales),
        SearchModule(runtime, index=index, stock=stock),
        CommerceModule(
            runtime,
            store=container.commerce_store(),
            holds=InventoryHolds(engine),
            carts=container.cart_cache(),
            admit_hold=holds.admit,
        ),
        ReadModelsModule(runtime, store=container.recommendations_store(), sold_out=sold_out),
        TrendingModule(runtime, store=container.trending_store(), sold_out=sold_out),
        OrdersModule(runtime, store=container.orders_store()),
        ArchiveModule(runtime),  # the activity archive, in-process with inprocess_projectors
        # the homepage hides what the live out-of-stock set says is sold out, asked by SKU (its tiles
        # carry their SKU; one set lookup per SKU, no product-to-SKU directory on the request path)
        HomepageModule(
            runtime,
            cache=container.homepage_cache(),
            sold_out=stock.out_of_stock,
            freshness=Freshness(
                max_age_s=settings.homepage_max_age_s, min_rebuild_s=settings.homepage_min_rebuild_s
            ),
        ),
    ]


def create_app(settings: Settings, *, container: Container | None = None) -> Litestar:
    """The app over ``container`` (a fresh one by default); its lifespan starts and closes everything."""
    container = container or Container(settings)
    limiter = None
    if settings.rate_limits:
        storage = container.rate_limit_storage()
        defer = engine_counts_limits(container.inventory_engine(), storage)
        limiter = rate_limiter(settings, storage, container.runtime.metrics, defer=defer)
    modules = build_modules(container, limiter)
    (ingest,) = (module for module in modules if isinstance(module, IngestModule))
    runtime = container.runtime
    http_metrics = HttpMetrics(runtime.metrics)

    checks: dict[str, ReadinessCheck] = {"event_log": runtime.event_log.ping}
    for module in modules:
        checks.update({f"{module.name}.{k}": v for k, v in module.readiness_checks().items()})

    # the operational probes are never rate limited (an orchestrator's probe refused with a 429 would take
    # a healthy instance out of service)
    @get(
        "/healthz",
        include_in_schema=True,
        tags=["operations"],
        sync_to_thread=False,
        opt=rate_limit_exempt_opt(),
    )
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "version": __version__}

    @get(
        "/readyz",
        tags=["operations"],
        opt=rate_limit_exempt_opt(),
        responses={503: ResponseSpec(dict[str, Any], description="A port is down (see checks)")},
    )
    async def readyz() -> Response[dict[str, object]]:
        """Readiness: every configured port answers a real request."""
        results = dict(await asyncio.gather(*(_run_check(n, c) for n, c in checks.items())))
        ready = all(v == "ok" for v in results.values())
        return Response(
            {"status": "ready" if ready else "not ready", "checks": results},
            status_code=200 if ready else HTTP_503_SERVICE_UNAVAILABLE,
        )

    @get(
        "/metrics",
        tags=["operations"],
        media_type=CONTENT_TYPE_LATEST,
        sync_to_thread=False,
        opt=rate_limit_exempt_opt(),
    )
    def metrics() -> bytes:
        """Prometheus exposition."""
        return generate_latest(runtime.metrics)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        async with container:
            for module in modules:
                await container.start(module)
            log.info("emporium started", modules=[m.name for m in modules], embedded=settings.embedded)
            yield

    # rate limits are counted per module (the docs in the app's default group; the probes not at all)
    handlers: list = [healthz, readyz, metrics, assets_router()]
    handlers.extend(in_group(module.name, module.route_handlers()) for module in modules)
    handlers.append(storefront_page())  # the page at / (static files; every API route is more specific)

    app = Litestar(
        route_handlers=handlers,
        lifespan=[lifespan],
        middleware=[http_metrics.middleware, *([limiter.middleware] if limiter else [])],
        # every route finds the owner of an X-Api-Key through ingest, which issues the keys
        opt={**identify_opt(ingest.service.identities.identify), **rate_limit_group_opt("operations")},
        # every error answer in the one shape: each context's table, the framework's errors, the 500
        exception_handlers=exception_handlers(
            INGEST_ERRORS,
            INVENTORY_ERRORS,
            SEARCH_ERRORS,
            COMMERCE_ERRORS,
            READ_MODEL_ERRORS,
            TRENDING_ERRORS,
            ORDERS_ERRORS,
            HOMEPAGE_ERRORS,
            LIMIT_ERRORS,
        ),
        openapi_config=OpenAPIConfig(
            title="Emporium",
            version=__version__,
            description="Search and inventory backend for online retail.",
            path="/docs",
            render_plugins=render_plugins(),
        ),
        logging_config=None,  # logging is configured once by kernel.observability
        debug=False,
    )
    document_rate_limits(app)
    app.state.runtime = runtime
    app.state.container = container
    return app
