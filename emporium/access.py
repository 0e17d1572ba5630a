"""Who may call what, wired once for the app: the rate limiter and its policies (from the settings), the
hold policy of the reservation routes, the route groups limits are counted in, and the OpenAPI note that
every route may answer 429.

The pieces are generic (``kernel.http.callers``, ``kernel.http.limits``); the key owner lookup itself
comes from ingest, which issues every key (``IngestService.identities.identify``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from limits import RateLimitItemPerSecond
from litestar import Litestar, Router
from litestar.openapi import ResponseSpec
from litestar.types import Scope
from prometheus_client import CollectorRegistry

from inventory.domain import LimitWindow, WindowExceeded
from inventory.holds import HoldPolicy
from kernel.http.callers import STOREFRONT, SUPPLIER, parse_networks, request_caller
from kernel.http.errors import ErrorBody
from kernel.http.limits import (
    RATE_LIMIT_EXEMPT_OPT,
    LimitsStorage,
    Policy,
    RateLimited,
    RateLimiter,
    Window,
    deferred_hit,
    rate_limit_group_opt,
)
from kernel.observability import rate_limit_refusals
from kernel.settings import Settings

RATE_LIMITED = ResponseSpec(
    ErrorBody,
    description="Over a rate limit: retry after Retry-After seconds (RateLimit, RateLimit-Policy say which)",
    generate_examples=False,
)


def engine_counts_limits(engine: object, storage: LimitsStorage) -> bool:
    """Whether the engine counts a reservation's limits in its own reserve call: it can, and the limits
    live in Redis (the cache URL: the engine's fast path is the same Redis)."""
    return bool(getattr(engine, "counts_limit_windows", False)) and hasattr(storage, "prefixed_key")


def rate_limiter(
    settings: Settings,
    storage: LimitsStorage,
    metrics: CollectorRegistry | None = None,
    *,
    defer: bool = False,
) -> RateLimiter:
    """Per route group: anonymous callers by address, suppliers and storefronts by key; ``defer``: routes
    that count their caller's limit themselves do (the reservation route, with the engine); refusals are
    counted on ``metrics`` when given."""
    return RateLimiter(
        storage,
        anonymous=Policy.parse("anonymous", settings.rate_limit_anonymous),
        by_kind={
            SUPPLIER: Policy.parse(SUPPLIER, settings.rate_limit_supplier),
            STOREFRONT: Policy.parse(STOREFRONT, settings.rate_limit_storefront),
        },
        trusted_proxies=parse_networks(settings.trusted_proxies),
        defer=defer,
        on_refused=None if metrics is None else rate_limit_refusals(metrics),
    )


def hold_policy(settings: Settings, limiter: RateLimiter | None) -> HoldPolicy:
    """Holds last at most ``max_hold_seconds``; with a limiter, the units each storefront customer asks
    for within one longest hold are capped, in a moving window: that is the customer's rate limit, and
    since no hold outlives the window, no more than that can be held at once. With a deferring limiter
    (``engine_counts_limits``) the engine counts them, and the storefront's limit, in its reserve call."""
    if limiter is None:
        return HoldPolicy(settings.max_hold_seconds)
    units = Policy(
        "customer-units",
        (RateLimitItemPerSecond(settings.customer_hold_units, settings.max_hold_seconds),),
        moving=True,
    )

    async def admit(storefront_id: str, customer_id: str, quantity: int) -> None:
        # a storefront id has no "/": the key names one customer of one storefront
        await limiter.hit(units, f"{storefront_id}/{customer_id}", cost=quantity)

    # ``admit`` stays the way checkouts count their units, in the same windows, even where the engine
    # counts a single reservation's
    counted = EngineCountedLimits(limiter, units) if limiter.defer else None
    return HoldPolicy(settings.max_hold_seconds, admit, counted=counted)


_MARK = "\x00"  # never in a key: identifiers are validated


class EngineCountedLimits:
    """``CountedLimits``: a reservation's windows, its storefront's (left by the limiter's middleware)
    then its customer's units, counted by the engine in the reserve script, in the limiter's own keys."""

    def __init__(self, limiter: RateLimiter, units: Policy) -> None:
        self.limiter, self.units = limiter, units
        self._by_caller: dict[tuple[str, str], tuple[LimitWindow, ...]] = {}
        # The units windows' keys around the "<storefront>/<customer>" they name (built once: this runs
        # for every reservation).
        self._units: list[tuple[str, str, str, int, int]] = []
        for w in limiter.windows(units, _MARK):
            head, tail = w.key.split(_MARK)
            self._units.append((w.policy, head, tail, w.limit, w.seconds))

    def windows(
        self, scope: Scope, storefront_id: str, customer_id: str, quantity: int
    ) -> tuple[LimitWindow, ...]:
        deferred = deferred_hit(scope)
        caller = () if deferred is None else self._caller_windows(deferred)
        who = f"{storefront_id}/{customer_id}"
        return caller + tuple(
            [
                LimitWindow(name, head + who + tail, limit, seconds, quantity, True)
                for name, head, tail, limit, seconds in self._units
            ]
        )

    def _caller_windows(self, deferred: tuple[Policy, str]) -> tuple[LimitWindow, ...]:
        """A caller's windows, remembered (one entry per storefront; cleared past a bound)."""
        policy, key = deferred
        by = (policy.name, key)  # not the policy itself: hashing its limits costs more than the lookup
        windows = self._by_caller.get(by)
        if windows is None:
            if len(self._by_caller) >= 10_000:
                self._by_caller.clear()
            windows = tuple(
                LimitWindow(w.policy, w.key, w.limit, w.seconds, 1, w.moving)
                for w in self.limiter.windows(policy, key)
            )
            self._by_caller[by] = windows
        return windows

    def refused(self, exc: WindowExceeded) -> Exception:
        w = exc.window
        if self.limiter.on_refused is not None:
            self.limiter.on_refused(w.name)
        return RateLimited(w.name, Window(w.name, w.key, w.limit, w.seconds, w.moving), exc.reset_at)

    async def count_apart(self, scope: Scope, ask: tuple[str, int] | None) -> None:
        """What the engine would have counted: the caller's limit, then (when known) the units asked."""
        deferred = deferred_hit(scope)
        if deferred is not None:
            await self.limiter.hit(*deferred)
        if ask is not None:
            customer, quantity = ask
            await self.limiter.hit(self.units, f"{request_caller(scope).id}/{customer}", cost=quantity)


def in_group(group: str, handlers: Sequence[Any]) -> Router:
    """``handlers`` with their rate limits counted in ``group``."""
    return Router(path="/", route_handlers=list(handlers), opt=rate_limit_group_opt(group))


def document_rate_limits(app: Litestar) -> None:
    """Every documented operation may answer 429 (read when the OpenAPI document is first built), but
    the probes, which are never limited."""
    for route in app.routes:
        handlers: Iterable[Any] = getattr(route, "route_handlers", ())
        for handler in handlers:
            if handler.opt.get(RATE_LIMIT_EXEMPT_OPT):
                continue
            if handler.include_in_schema and 429 not in (handler.responses or {}):
                handler.responses = {**(handler.responses or {}), 429: RATE_LIMITED}
