"""Structured logs (structlog, JSON by default) and HTTP metrics on a per-app Prometheus registry."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Histogram


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """Route stdlib and structlog records through one renderer on stderr."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "cassandra", "elastic_transport", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def rate_limit_refusals(registry: CollectorRegistry) -> Callable[[str], None]:
    """``emporium_rate_limit_refusals_total{policy}``: a callback for ``RateLimiter(on_refused=...)``."""
    counter = Counter(
        "emporium_rate_limit_refusals_total",
        "Requests refused by a rate limit (429), by policy (anonymous, supplier, storefront, ...)",
        ["policy"],
        registry=registry,
    )
    children: dict[str, Any] = {}

    def refused(policy: str) -> None:
        child = children.get(policy)
        if child is None:
            child = children[policy] = counter.labels(policy)
        child.inc()

    return refused


class HttpMetrics:
    """Request count and latency by route template (not raw path, to bound cardinality)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "emporium_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=registry
        )
        self.latency = Histogram(
            "emporium_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        # Labelled children by (handler id, method, status): label lookup is a lock and several
        # dict operations in prometheus_client, too much to repeat on every request of the hot path.
        self._series: dict[tuple[int, str, int], tuple[Any, Any]] = {}

    def _labelled(self, handler: Any, method: str, status: int) -> tuple[Any, Any]:
        route = "unmatched"
        if handler is not None and getattr(handler, "paths", None):
            route = sorted(handler.paths)[0]
        return self.requests.labels(method, route, str(status)), self.latency.labels(method, route)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            status = 500
            started = time.perf_counter()

            async def send_wrapper(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_wrapper)
            finally:
                elapsed = time.perf_counter() - started
                handler = scope.get("route_handler")
                method = str(scope.get("method", "GET")) if handler is not None else "other"
                key = (id(handler), method, status)  # bounded: unknown paths all share "other"
                series = self._series.get(key)
                if series is None:
                    series = self._series[key] = self._labelled(handler, method, status)
                series[0].inc()
                series[1].observe(elapsed)

        return wrapped
