"""Rate limits per route group and caller, counted by the ``limits`` library in one shared storage.

The storage is in-process (``memory://``) on the embedded stack and Redis on a cluster (atomic Lua
counters every worker shares); the composition root opens it from the cache URL. Each route belongs
to a group (its ``opt``, ``rate_limit_group_opt``); the middleware counts every request against the
policy of its caller in that group: anonymous callers and wrong keys by client address
(``kernel.http.callers.client_address``), key holders by their owner, with the policy of their kind.
Routes that know more (a reservation knows the storefront's customer) call ``RateLimiter.hit`` with
their own policy and key.

A refusal is ``RateLimited``, answered by ``LIMIT_ERRORS`` as a 429 in the one error shape, with
``Retry-After`` and the IETF ``RateLimit`` / ``RateLimit-Policy`` headers (draft-ietf-httpapi-ratelimit-
headers: ``RateLimit-Policy: "anonymous-1s";q=30;w=1`` and ``RateLimit: "anonymous-1s";r=0;t=1``).
When the storage fails (Redis down) requests are let through and the failure is logged: limits protect
the service, they must not take it down.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import structlog
from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from limits.aio.strategies import RateLimiter as Strategy
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from kernel.http.callers import IpNetwork, client_address, keyed_request
from kernel.http.errors import ErrorRule, error_table

log = structlog.get_logger(__name__)

RATE_LIMIT_GROUP_OPT = "rate_limit_group"
DEFAULT_GROUP = "default"
_FAILURE_LOG_EVERY_S = 10.0


def rate_limit_group_opt(group: str) -> dict[str, Any]:
    return {RATE_LIMIT_GROUP_OPT: group}


class Policy(NamedTuple):
    """Named limits that all apply (``30/second;1200/minute``); ``moving`` counts in a moving window
    (exact, for caps on a quantity) instead of fixed windows (cheaper, for request rates)."""

    name: str
    items: tuple[RateLimitItem, ...]
    moving: bool = False

    @classmethod
    def parse(cls, name: str, text: str, *, moving: bool = False) -> Policy:
        """``text`` in the ``limits`` notation; ValueError names the policy when it does not parse."""
        try:
            items = tuple(parse_many(text))
        except ValueError as exc:
            raise ValueError(f"rate limit {name!r}: cannot read {text!r} ({exc})") from None
        return cls(name, items, moving)


class RateLimited(Exception):
    """A caller went over one limit of a policy."""

    def __init__(self, policy: str, item: RateLimitItem, reset_at: float) -> None:
        self.policy = f"{policy}-{item.get_expiry()}s"
        self.limit = item.amount
        self.window_s = item.get_expiry()
        self.retry_after_s = max(1, math.ceil(reset_at - time.time()))
        super().__init__(
            f"rate limit {self.policy} exceeded: {self.limit} per {self.window_s} s; "
            f"retry in {self.retry_after_s} s"
        )

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Retry-After": str(self.retry_after_s),
            "RateLimit-Policy": f'"{self.policy}";q={self.limit};w={self.window_s}',
            "RateLimit": f'"{self.policy}";r=0;t={self.retry_after_s}',
        }


LIMIT_ERRORS = error_table(
    ErrorRule(
        RateLimited,
        429,
        extra=lambda e: {"policy": e.policy, "limit": e.limit, "window_s": e.window_s},
        headers=lambda e: e.headers,
    )
)


class RateLimiter:
    """Counts hits of policies in one ``limits`` storage; ``middleware`` applies the callers' policies."""

    def __init__(
        self,
        storage: Storage,
        *,
        anonymous: Policy,
        by_kind: Mapping[str, Policy],
        trusted_proxies: tuple[IpNetwork, ...] = (),
    ) -> None:
        self.storage = storage
        self.anonymous = anonymous
        self.by_kind = dict(by_kind)
        self.trusted_proxies = trusted_proxies
        self._fixed = FixedWindowRateLimiter(storage)
        self._moving = MovingWindowRateLimiter(storage)
        self._last_failure_log = 0.0

    async def hit(self, policy: Policy, key: str, cost: int = 1) -> None:
        """Count ``cost`` against every limit of ``policy`` for ``key``; RateLimited past one of them."""
        strategy: Strategy = self._moving if policy.moving else self._fixed
        for item in policy.items:
            try:
                allowed = await strategy.hit(item, policy.name, key, cost=cost)
                if allowed:
                    continue
                reset_at, _ = await strategy.get_window_stats(item, policy.name, key)
            except Exception as exc:
                self._storage_failed(exc)
                return
            raise RateLimited(policy.name, item, reset_at)

    def _storage_failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_failure_log >= _FAILURE_LOG_EVERY_S:
            self._last_failure_log = now
            log.warning("rate limit storage failed; requests are let through", error=repr(exc))

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Count each HTTP request against its caller's policy in its route's group."""

        async def limited(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == ScopeType.HTTP:
                opt = scope["route_handler"].opt
                caller = (await keyed_request(scope, opt)).caller
                if caller is None:
                    policy, who = self.anonymous, client_address(scope, self.trusted_proxies)
                else:
                    policy, who = self.by_kind.get(caller.kind, self.anonymous), caller.id
                await self.hit(policy, f"{opt.get(RATE_LIMIT_GROUP_OPT, DEFAULT_GROUP)}/{who}")
            await app(scope, receive, send)

        return limited
