"""Prometheus metrics of the storefront: the stock filter, the result cache and activity events."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class SearchMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.dropped_out_of_stock = Counter(
            "emporium_search_out_of_stock_dropped_total",
            "Hits dropped because the out-of-stock set knew them gone before the index did",
            registry=registry,
        )
        self.cache = Counter(
            "emporium_search_cache_total",
            "Index answers served from the result cache",
            ["result"],
            registry=registry,
        )
        self.activity_published = Counter(
            "emporium_activity_events_published_total",
            "Storefront activity events published",
            registry=registry,
        )
        self.activity_dropped = Counter(
            "emporium_activity_events_dropped_total",
            "Activity events dropped because the publish queue was full or the log refused them",
            ["reason"],
            registry=registry,
        )
        self.activity_batch_seconds = Histogram(
            "emporium_activity_publish_seconds",
            "Time to publish one batch of activity events",
            registry=registry,
        )
