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
from prometheus_client import CollectorRegistry

from inventory.api import HoldPolicy
from kernel.http.callers import STOREFRONT, SUPPLIER, parse_networks
from kernel.http.errors import ErrorBody
from kernel.http.limits import LimitsStorage, Policy, RateLimiter, rate_limit_group_opt
from kernel.observability import rate_limit_refusals
from kernel.settings import Settings

RATE_LIMITED = ResponseSpec(
    ErrorBody,
    description="Over a rate limit: retry after Retry-After seconds (RateLimit, RateLimit-Policy say which)",
    generate_examples=False,
)


def rate_limiter(
    settings: Settings, storage: LimitsStorage, metrics: CollectorRegistry | None = None
) -> RateLimiter:
    """Per route group: anonymous callers by address, suppliers and storefronts by key; refusals are
    counted on ``metrics`` when given."""
    return RateLimiter(
        storage,
        anonymous=Policy.parse("anonymous", settings.rate_limit_anonymous),
        by_kind={
            SUPPLIER: Policy.parse(SUPPLIER, settings.rate_limit_supplier),
            STOREFRONT: Policy.parse(STOREFRONT, settings.rate_limit_storefront),
        },
        trusted_proxies=parse_networks(settings.trusted_proxies),
        on_refused=None if metrics is None else rate_limit_refusals(metrics),
    )


def hold_policy(settings: Settings, limiter: RateLimiter | None) -> HoldPolicy:
    """Holds last at most ``max_hold_seconds``; with a limiter, the units each storefront customer asks
    for within one longest hold are capped, in a moving window: that is the customer's rate limit, and
    since no hold outlives the window, no more than that can be held at once."""
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

    return HoldPolicy(settings.max_hold_seconds, admit)


def in_group(group: str, handlers: Sequence[Any]) -> Router:
    """``handlers`` with their rate limits counted in ``group``."""
    return Router(path="/", route_handlers=list(handlers), opt=rate_limit_group_opt(group))


def document_rate_limits(app: Litestar) -> None:
    """Every documented operation may answer 429 (read when the OpenAPI document is first built)."""
    for route in app.routes:
        handlers: Iterable[Any] = getattr(route, "route_handlers", ())
        for handler in handlers:
            if handler.include_in_schema and 429 not in (handler.responses or {}):
                handler.responses = {**(handler.responses or {}), 429: RATE_LIMITED}
