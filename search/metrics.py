"""Prometheus metrics of the storefront: the stock filter, the result cache and activity events."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from kernel.activity import ActivityMetrics


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
        activity = ActivityMetrics.of(registry)  # shared with other publishers of the process
        self.activity_published = activity.activity_published
        self.activity_dropped = activity.activity_dropped
        self.activity_batch_seconds = activity.activity_batch_seconds
