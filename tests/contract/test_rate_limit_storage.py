"""One contract for the rate limiter's storage, in-process (``memory://``, embedded) and Redis (cluster):
counts are exact under concurrency, a refusal says when to retry, and on Redis every worker shares them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from limits import RateLimitItemPerSecond

from emporium.adapters import RATE_LIMIT_STORAGE
from kernel.http.limits import LimitsStorage as Storage
from kernel.http.limits import Policy, RateLimited, RateLimiter


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.cluster)])
async def open_storage(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], Storage]]:
    """Opens storages of one URL, as each worker process of a server would."""
    url = "memory://" if request.param == "memory" else request.getfixturevalue("redis_url")
    opened: list[Storage] = []
    shared = RATE_LIMIT_STORAGE.open(url)

    def open_one() -> Storage:
        if request.param == "memory":  # one process: one storage
            return shared
        storage = RATE_LIMIT_STORAGE.open(url)
        opened.append(storage)
        return storage

    yield open_one
    for storage in [shared, *opened]:
        await RATE_LIMIT_STORAGE.close(storage)


def limiter(storage: Storage) -> RateLimiter:
    return RateLimiter(storage, anonymous=Policy.parse("anonymous", "1/second"), by_kind={})


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def refused(call: Any) -> RateLimited | None:
    try:
        await call
    except RateLimited as exc:
        return exc
    return None


async def test_a_fixed_window_refuses_past_its_limit_and_says_when_to_retry(
    open_storage: Callable[[], Storage],
) -> None:
    rate = limiter(open_storage())
    policy = Policy.parse(unique("rate"), "3/minute;100/hour")
    for _ in range(3):
        assert await refused(rate.hit(policy, "ann")) is None
    refusal = await refused(rate.hit(policy, "ann"))
    assert refusal is not None and refusal.limit == 3 and refusal.window_s == 60
    assert 1 <= refusal.retry_after_s <= 60
    assert refusal.headers["RateLimit-Policy"] == f'"{policy.name}-60s";q=3;w=60'
    assert await refused(rate.hit(policy, "bob")) is None  # counted per key


async def test_a_moving_window_caps_a_quantity(open_storage: Callable[[], Storage]) -> None:
    rate = limiter(open_storage())
    units = Policy(unique("units"), (RateLimitItemPerSecond(10, 900),), moving=True)
    assert await refused(rate.hit(units, "shop/ann", cost=6)) is None
    refusal = await refused(rate.hit(units, "shop/ann", cost=5))
    assert refusal is not None and refusal.window_s == 900 and refusal.retry_after_s > 800
    assert await refused(rate.hit(units, "shop/ann", cost=4)) is None  # exactly the cap
    assert await refused(rate.hit(units, "shop/ann", cost=1)) is not None


async def test_counts_are_exact_under_concurrency_and_shared_by_workers(
    open_storage: Callable[[], Storage],
) -> None:
    workers = [limiter(open_storage()) for _ in range(3)]
    policy = Policy.parse(unique("shared"), "20/minute")
    outcomes = await asyncio.gather(*(refused(workers[i % 3].hit(policy, "flood")) for i in range(60)))
    assert sum(outcome is None for outcome in outcomes) == 20
    units = Policy(unique("units"), (RateLimitItemPerSecond(50, 900),), moving=True)
    outcomes = await asyncio.gather(
        *(refused(workers[i % 3].hit(units, "shop/eve", cost=2)) for i in range(40))
    )
    assert sum(outcome is None for outcome in outcomes) == 25
