"""Rate limits per route group and caller, counted by the ``limits`` library in one shared storage.

The storage is in-process (``memory://``) on the embedded stack and Redis on a cluster (atomic Lua
counters every worker shares); the composition root opens it from the cache URL. In process, the
synchronous ``limits`` storage is used (no I/O, so nothing to await; its asyncio twin starts a task on
nearly every hit); Redis goes through the asyncio one. Each route belongs
to a group (its ``opt``, ``rate_limit_group_opt``); the middleware counts every request against the
policy of its caller in that group: anonymous callers and wrong keys by client address
(``kernel.http.callers.client_address``), key holders by their owner, with the policy of their kind.
Routes that know more (a reservation knows the storefront's customer) call ``RateLimiter.hit`` with
their own policy and key. A route may also count its caller's limit itself (route opt
``RATE_LIMIT_DEFERRED_OPT`` naming the kind of caller it does it for, honoured when the limiter is built
with ``defer=True``): the middleware then
only leaves the caller's ``(policy, key)`` in the scope (``deferred_hit``), and the route counts it, for
example in the same Redis call as its own work (``RateLimiter.windows``), or with ``hit`` when it refuses
the request before that. Operational probes (route opt ``RATE_LIMIT_EXEMPT_OPT``) are not counted.

A refusal is ``RateLimited``, answered by ``LIMIT_ERRORS`` as a 429 in the one error shape, with
``Retry-After`` and the IETF ``RateLimit`` / ``RateLimit-Policy`` headers (draft-ietf-httpapi-ratelimit-
headers: ``RateLimit-Policy: "anonymous-1s";q=30;w=1`` and ``RateLimit: "anonymous-1s";r=0;t=1``).
When the storage fails (Redis down) requests are let through and the failure is logged: limits protect
the service, they must not take it down.
"""

from __future__ import annotations

import inspect
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, cast

import structlog
from limits import RateLimitItem, parse_many, strategies
from limits.aio import storage as aio_storage
from limits.aio import strategies as aio_strategies
from limits.storage import MemoryStorage
from limits.storage import Storage as SyncStorage
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from kernel.http.callers import IpNetwork, client_address, keyed_request
from kernel.http.errors import ErrorRule, error_table

log = structlog.get_logger(__name__)

RATE_LIMIT_GROUP_OPT = "rate_limit_group"
# Route opt: the handler counts the limit of callers of this kind itself (others are counted as usual:
# a caller the route refuses before its handler runs must still be counted).
RATE_LIMIT_DEFERRED_OPT = "rate_limit_deferred"
_DEFERRED_SCOPE_KEY = "emporium.rate_limit_deferred"
# Route opt: never counted (operational probes: an orchestrator's or load balancer's probe refused with a
# 429 would take a healthy instance out of service).
RATE_LIMIT_EXEMPT_OPT = "rate_limit_exempt"
DEFAULT_GROUP = "default"
_FAILURE_LOG_EVERY_S = 10.0
SWEEP_INTERVAL_S = 1.0


LimitsStorage = SyncStorage | aio_storage.Storage


def rate_limit_group_opt(group: str) -> dict[str, Any]:
    return {RATE_LIMIT_GROUP_OPT: group}


def rate_limit_exempt_opt() -> dict[str, Any]:
    return {RATE_LIMIT_EXEMPT_OPT: True}


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


class InProcessStorage(MemoryStorage):
    """``limits``' in-process storage, its expired counters swept every ``SWEEP_INTERVAL_S`` instead of
    every 10 ms: a sweep walks every key, and holds keep per-customer keys for a quarter of an hour, so a
    sweep may take milliseconds. A counter read after its expiry is dropped on the spot either way."""

    def _MemoryStorage__schedule_expiry(self) -> None:  # the parent's private scheduler, overridden
        if not self.timer.is_alive():
            sweep = self._MemoryStorage__expire_events  # type: ignore[attr-defined]
            self.timer = threading.Timer(SWEEP_INTERVAL_S, sweep)
            self.timer.daemon = True
            self.timer.start()


def storage_key(item: RateLimitItem, identifier: str) -> str:
    """``item.key_for(identifier)``: the key ``limits`` keeps the window of ``item`` for ``identifier``
    under (its strategies read a refused caller's window statistics there)."""
    return f"{item.namespace}/{identifier}/{item.amount}/{item.multiples}/{item.GRANULARITY.name}"


class Window(NamedTuple):
    """One limit of a policy for one caller, where the storage keeps its window (``key``, with the
    storage's prefix): for a caller that counts it in the same Redis, atomically with its own work."""

    policy: str
    key: str
    limit: int
    seconds: int
    moving: bool


class RateLimited(Exception):
    """A caller went over one limit of a policy."""

    def __init__(self, policy: str, item: RateLimitItem | Window, reset_at: float) -> None:
        limit, window_s = (
            (item.limit, item.seconds) if isinstance(item, Window) else (item.amount, item.get_expiry())
        )
        self.policy = f"{policy}-{window_s}s"
        self.limit = limit
        self.window_s = window_s
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
        storage: LimitsStorage,
        *,
        anonymous: Policy,
        by_kind: Mapping[str, Policy],
        trusted_proxies: tuple[IpNetwork, ...] = (),
        defer: bool = False,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self.storage = storage
        self.defer = defer  # routes with RATE_LIMIT_DEFERRED_OPT count their caller's limit themselves
        self.on_refused = on_refused  # called with the policy's name on every refusal (a metric)
        self.anonymous = anonymous
        self.by_kind = dict(by_kind)
        self.trusted_proxies = trusted_proxies
        self._sync: dict[bool, strategies.RateLimiter] = {}
        self._async: dict[bool, aio_strategies.RateLimiter] = {}
        if isinstance(storage, SyncStorage):
            self._sync = {
                False: strategies.FixedWindowRateLimiter(storage),
                True: strategies.MovingWindowRateLimiter(storage),
            }
        else:
            self._async = {
                False: aio_strategies.FixedWindowRateLimiter(storage),
                True: aio_strategies.MovingWindowRateLimiter(storage),
            }
        self._last_failure_log = 0.0

    async def hit(self, policy: Policy, key: str, cost: int = 1) -> None:
        """Count ``cost`` against every limit of ``policy`` for ``key``; RateLimited past one of them."""
        key = f"{policy.name}/{key}"  # one identifier: ``limits`` cleans each one it is given
        for item in policy.items:
            try:
                if await self._allowed(policy, item, key, cost):
                    continue
                reset_at = await self._reset_at(policy, item, key)
            except Exception as exc:
                self._storage_failed(exc)
                return
            if self.on_refused is not None:
                self.on_refused(policy.name)
            raise RateLimited(policy.name, item, reset_at)

    def windows(self, policy: Policy, key: str) -> list[Window]:
        """Where ``hit(policy, key)`` would count, for a caller that counts in the storage's Redis itself
        (``BatchedRedisStorage``: keys with its prefix); the same windows, so both ways add up."""
        prefixed = getattr(self.storage, "prefixed_key", None)
        if prefixed is None:
            raise TypeError(f"{type(self.storage).__name__} has no keys to count in")
        key = f"{policy.name}/{key}"
        return [
            Window(
                policy.name, prefixed(storage_key(item, key)), item.amount, item.get_expiry(), policy.moving
            )
            for item in policy.items
        ]

    async def _allowed(self, policy: Policy, item: RateLimitItem, key: str, cost: int) -> bool:
        """What ``limits``' strategies' ``hit`` does, without their wrapping (it costs as much as the
        count itself): a fixed window is one counter incremented with an expiry, a moving window one
        acquired entry."""
        storage, window_key, expiry = self.storage, storage_key(item, key), item.get_expiry()
        if policy.moving:
            acquired = storage.acquire_entry(window_key, item.amount, expiry, amount=cost)  # type: ignore[union-attr]
            return bool(await acquired if inspect.isawaitable(acquired) else acquired)
        count = storage.incr(window_key, expiry, amount=cost)
        return int(await count if inspect.isawaitable(count) else count) <= item.amount

    async def _reset_at(self, policy: Policy, item: RateLimitItem, key: str) -> float:
        if self._sync:
            return self._sync[policy.moving].get_window_stats(item, key).reset_time
        return (await self._async[policy.moving].get_window_stats(item, key)).reset_time

    def _storage_failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_failure_log >= _FAILURE_LOG_EVERY_S:
            self._last_failure_log = now
            log.warning("rate limit storage failed; requests are let through", error=repr(exc))

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Count each HTTP request against its caller's policy in its route's group (routes with
        ``RATE_LIMIT_EXEMPT_OPT`` are let through uncounted, their caller not even identified)."""

        async def limited(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == ScopeType.HTTP:
                opt = scope["route_handler"].opt
                if not opt.get(RATE_LIMIT_EXEMPT_OPT):
                    caller = (await keyed_request(scope, opt)).caller
                    if caller is None:
                        policy, who = self.anonymous, client_address(scope, self.trusted_proxies)
                    else:
                        policy, who = self.by_kind.get(caller.kind, self.anonymous), caller.id
                    key = f"{opt.get(RATE_LIMIT_GROUP_OPT, DEFAULT_GROUP)}/{who}"
                    if self.defer and caller is not None and opt.get(RATE_LIMIT_DEFERRED_OPT) == caller.kind:
                        scope[_DEFERRED_SCOPE_KEY] = (policy, key)  # type: ignore[literal-required]
                    else:
                        await self.hit(policy, key)
            await app(scope, receive, send)

        return limited


def deferred_hit(scope: Scope) -> tuple[Policy, str] | None:
    """The ``(policy, key)`` the middleware left for a route that counts its caller's limit itself."""
    deferred: Any = scope.get(_DEFERRED_SCOPE_KEY)
    return cast("tuple[Policy, str] | None", deferred)
