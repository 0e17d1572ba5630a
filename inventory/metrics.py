"""Prometheus metrics of inventory: reservation outcomes (counted by the routes) and the cluster engine's
own counters (Redis fast-path losses, reconciles), read from the engine when Prometheus scrapes."""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from inventory.domain import (
    EngineUnavailable,
    IdempotencyConflict,
    InsufficientStock,
    InvalidRequest,
    InvalidTransition,
    LimitExceeded,
    ReservationNotFound,
    UnknownSku,
)

#: Error class -> outcome label (anything else: "error"); a success is "ok".
OUTCOMES: dict[type[BaseException], str] = {
    InsufficientStock: "insufficient_stock",
    LimitExceeded: "limit_exceeded",
    UnknownSku: "unknown_sku",
    InvalidRequest: "invalid",
    ReservationNotFound: "not_found",
    InvalidTransition: "invalid_transition",
    IdempotencyConflict: "idempotency_conflict",
    EngineUnavailable: "unavailable",
}


class _Tracked:
    """``with outcomes.track("reserve"):`` counts one call by how it ended (a class, not a generator
    context manager: this sits on the reservation hot path)."""

    __slots__ = ("action", "outcomes")

    def __init__(self, outcomes: ReservationOutcomes, action: str) -> None:
        self.outcomes, self.action = outcomes, action

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.outcomes.count(self.action, error)


class ReservationOutcomes:
    """``emporium_reservations_total{action, outcome}``: reserve, confirm and release calls."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.counter = Counter(
            "emporium_reservations_total",
            "Reservation calls by action (reserve, confirm, release) and outcome",
            ["action", "outcome"],
            registry=registry,
        )
        self._children: dict[tuple[str, str], Any] = {}
        self._trackers = {action: _Tracked(self, action) for action in ("reserve", "confirm", "release")}

    def __deepcopy__(self, memo: dict[int, Any]) -> ReservationOutcomes:
        return self  # Litestar deep-copies a router's opt; the counters stay shared

    def track(self, action: str) -> _Tracked:
        return self._trackers[action]

    def count(self, action: str, error: BaseException | None) -> None:
        outcome = "ok" if error is None else OUTCOMES.get(type(error), "error")
        child = self._children.get((action, outcome))
        if child is None:
            child = self._children[(action, outcome)] = self.counter.labels(action, outcome)
        child.inc()


class EngineCollector(Collector):
    """The cluster engine's fast-path losses and reconciles; nothing for an engine without Redis."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        fast_path, stats = getattr(self.engine, "fast_path", None), getattr(self.engine, "stats", None)
        if fast_path is None or stats is None:
            return
        yield CounterMetricFamily(
            "emporium_inventory_fast_path_losses",
            "Times this process found the Redis fast path lost (restart, flush, errors)",
            value=fast_path.losses,
        )
        yield GaugeMetricFamily(
            "emporium_inventory_fast_path_losses_last_timestamp_seconds",
            "When this process last found the fast path lost (0: never)",
            value=fast_path.last_loss_at,
        )
        reconciles = CounterMetricFamily(
            "emporium_inventory_reconciles", "Rebuilds of Redis from the database", labels=["outcome"]
        )
        reconciles.add_metric(["ok"], stats.reconciles)
        reconciles.add_metric(["failed"], stats.reconcile_failures)
        yield reconciles
        yield GaugeMetricFamily(
            "emporium_inventory_reconcile_last_success_timestamp_seconds",
            "When this process last rebuilt Redis from the database (0: never)",
            value=stats.last_reconcile_at,
        )
