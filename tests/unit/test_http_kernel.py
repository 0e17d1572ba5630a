"""The shared HTTP style (kernel.http): every error in one shape, the error table, guards, OPTIONS, callers
and rate limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from limits.storage import MemoryStorage
from litestar import Controller, Litestar, Request, Router, delete, get, post
from litestar.params import FromPath, FromQuery
from litestar.testing import AsyncTestClient

from kernel.http.callers import (
    Caller,
    client_address,
    identify_opt,
    key_of_kind,
    parse_networks,
    request_caller,
)
from kernel.http.errors import RETRY_AFTER, ErrorRule, error_table, exception_handlers
from kernel.http.guards import admin_only, admin_token_opt, api_key_only, api_key_opt
from kernel.http.limits import (
    LIMIT_ERRORS,
    Policy,
    RateLimiter,
    rate_limit_exempt_opt,
    rate_limit_group_opt,
    storage_key,
)
from kernel.http.options import with_options


class OutOfTea(Exception):
    def __init__(self, left: int) -> None:
        super().__init__(f"only {left} cups left")
        self.left = left


class KettleDown(Exception):
    pass


class WrongKey(Exception):
    pass


TEA_ERRORS = error_table(
    ErrorRule(OutOfTea, 409, extra=lambda e: {"left": e.left}),
    ErrorRule(KettleDown, 503, detail="retry shortly", headers=RETRY_AFTER, warning="kettle down"),
    ErrorRule(WrongKey, 403),
)


class TeaController(Controller):
    path = "/tea"

    @get("/{cups:int}")
    async def pour(self, cups: FromPath[int], strength: FromQuery[int] = 1) -> dict[str, int]:
        if cups > 3:
            raise OutOfTea(3)
        if cups == 0:
            raise KettleDown("the kettle is unplugged")
        if cups < 0:
            raise RuntimeError("boom")
        return {"cups": cups, "strength": strength}

    @delete("/{cups:int}", guards=[admin_only])
    async def spill(self, cups: FromPath[int]) -> None:
        return None

    @post("/{owner:str}/keys", guards=[api_key_only], status_code=200)
    async def keyed(self, owner: FromPath[str]) -> dict[str, str]:
        return {"owner": owner}


async def check_key(key: str | None, path_params: Mapping[str, Any]) -> None:
    if key != f"key-of-{path_params['owner']}":
        raise WrongKey("not your key")


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Any]]:
    router = Router(
        path="/",
        route_handlers=with_options(TeaController),
        opt={**admin_token_opt("secret"), **api_key_opt(check_key)},
    )
    app = Litestar([router], exception_handlers=exception_handlers(TEA_ERRORS))
    async with AsyncTestClient(app) as test_client:
        yield test_client


async def test_domain_errors_follow_their_rule(client: AsyncTestClient[Any]) -> None:
    short = await client.get("/tea/5")
    assert (short.status_code, short.json()) == (
        409,
        {"status_code": 409, "detail": "only 3 cups left", "extra": {"left": 3}},
    )
    down = await client.get("/tea/0")
    assert down.status_code == 503 and down.headers["retry-after"] == "1"
    assert down.json() == {"status_code": 503, "detail": "retry shortly"}


async def test_framework_errors_and_crashes_have_the_same_shape(client: AsyncTestClient[Any]) -> None:
    unknown = await client.get("/coffee")
    assert unknown.json() == {"status_code": 404, "detail": "Not Found"}
    wrong_method = await client.put("/tea/1")
    assert wrong_method.status_code == 405 and set(wrong_method.json()) == {"status_code", "detail"}
    invalid = await client.get("/tea/1?strength=strong")
    body = invalid.json()
    assert invalid.status_code == 400 and body["status_code"] == 400
    assert body["extra"][0]["key"] == "strength"
    crash = await client.get("/tea/-1")
    assert crash.json() == {"status_code": 500, "detail": "internal error"}


async def test_admin_guard(client: AsyncTestClient[Any]) -> None:
    missing = await client.delete("/tea/1")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert (await client.delete("/tea/1", headers={"Authorization": "Basic c2VjcmV0"})).status_code == 401
    assert (await client.delete("/tea/1", headers={"Authorization": "Bearer nope"})).status_code == 403
    assert (await client.delete("/tea/1", headers={"Authorization": "Bearer secret"})).status_code == 204


async def test_api_key_guard_checks_the_key_of_the_owner_in_the_path(client: AsyncTestClient[Any]) -> None:
    assert (await client.post("/tea/ann/keys")).status_code == 403
    assert (await client.post("/tea/ann/keys", headers={"X-Api-Key": "key-of-bob"})).status_code == 403
    ok = await client.post("/tea/ann/keys", headers={"X-Api-Key": "key-of-ann"})
    assert ok.status_code == 200 and ok.json() == {"owner": "ann"}


async def test_guards_without_their_opt_refuse_everyone() -> None:
    app = Litestar([TeaController], exception_handlers=exception_handlers(TEA_ERRORS))
    async with AsyncTestClient(app) as client:
        assert (await client.delete("/tea/1", headers={"Authorization": "Bearer "})).status_code == 403
        assert (await client.post("/tea/ann/keys", headers={"X-Api-Key": "key-of-ann"})).status_code == 403


async def test_options_lists_every_method_of_a_path_without_guards(client: AsyncTestClient[Any]) -> None:
    allowed = (await client.options("/tea/1")).headers["allow"]
    assert allowed == "DELETE, GET, OPTIONS"
    assert (await client.options("/tea/ann/keys")).status_code == 204


def test_an_exception_class_maps_once() -> None:
    with pytest.raises(ValueError, match="two rules"):
        error_table(ErrorRule(OutOfTea, 409), ErrorRule(OutOfTea, 400))
    with pytest.raises(ValueError, match="mapped twice"):
        exception_handlers(TEA_ERRORS, error_table(ErrorRule(WrongKey, 401)))


# Callers and rate limits ---------------------------------------------------------------------


class KeyedController(Controller):
    path = "/shop"

    @get("/open")
    async def browse(self) -> dict[str, str]:
        return {"ok": "yes"}

    @get("/probe", opt=rate_limit_exempt_opt())
    async def probe(self) -> dict[str, str]:
        return {"ok": "yes"}

    @post("/orders", guards=[key_of_kind("storefront")], status_code=200)
    async def order(self, request: Request[Any, Any, Any]) -> dict[str, str]:
        return {"storefront": request_caller(request.scope).id}


async def identify(key: str) -> Caller | None:
    return {"sfk-1": Caller("storefront", "one"), "emp-1": Caller("supplier", "acme")}.get(key)


def limited_app(limiter: RateLimiter | None) -> Litestar:
    return Litestar(
        [Router("/", route_handlers=[KeyedController], opt=rate_limit_group_opt("shop"))],
        middleware=[limiter.middleware] if limiter else [],
        exception_handlers=exception_handlers(LIMIT_ERRORS),
        opt=identify_opt(identify),
    )


def two_per_minute() -> RateLimiter:
    return RateLimiter(
        MemoryStorage(),
        anonymous=Policy.parse("anonymous", "2/minute"),
        by_kind={"storefront": Policy.parse("storefront", "3/minute")},
        trusted_proxies=parse_networks("127.0.0.1, 10.0.0.0/8"),
    )


async def test_a_key_of_another_kind_is_403_a_wrong_or_missing_key_401() -> None:
    async with AsyncTestClient(limited_app(None)) as client:
        missing = await client.post("/shop/orders")
        assert missing.status_code == 401 and "missing X-Api-Key" in missing.json()["detail"]
        assert missing.headers["www-authenticate"] == 'ApiKey header="X-Api-Key"'
        wrong = await client.post("/shop/orders", headers={"X-Api-Key": "sfk-2"})
        assert wrong.status_code == 401 and "invalid API key" in wrong.json()["detail"]
        other_kind = await client.post("/shop/orders", headers={"X-Api-Key": "emp-1"})
        assert other_kind.status_code == 403 and "supplier key" in other_kind.json()["detail"]
        ok = await client.post("/shop/orders", headers={"X-Api-Key": "sfk-1"})
        assert ok.status_code == 200 and ok.json() == {"storefront": "one"}


async def test_the_429_is_in_the_one_shape_with_retry_after_and_ietf_headers() -> None:
    async with AsyncTestClient(limited_app(two_per_minute())) as client:
        assert [(await client.get("/shop/open")).status_code for _ in range(2)] == [200, 200]
        refused = await client.get("/shop/open")
        assert refused.status_code == 429
        body = refused.json()
        assert body["status_code"] == 429 and "anonymous" in body["detail"]
        assert body["extra"] == {"policy": "anonymous-60s", "limit": 2, "window_s": 60}
        retry = int(refused.headers["retry-after"])
        assert 1 <= retry <= 60
        assert refused.headers["ratelimit-policy"] == '"anonymous-60s";q=2;w=60'
        assert refused.headers["ratelimit"] == f'"anonymous-60s";r=0;t={retry}'
        # a wrong key is anonymous too: no fresh budget by inventing keys
        assert (await client.get("/shop/open", headers={"X-Api-Key": "sfk-9"})).status_code == 429
        # a storefront is counted by its key, apart from the address
        keyed = [
            (await client.post("/shop/orders", headers={"X-Api-Key": "sfk-1"})).status_code for _ in range(4)
        ]
        assert keyed == [200, 200, 200, 429]


async def test_an_exempt_route_is_never_counted_nor_refused() -> None:
    async with AsyncTestClient(limited_app(two_per_minute())) as client:
        assert [(await client.get("/shop/probe")).status_code for _ in range(5)] == [200] * 5
        # the probes used none of the address's budget in their group; the other routes are counted
        assert [(await client.get("/shop/open")).status_code for _ in range(3)] == [200, 200, 429]
        assert (await client.get("/shop/probe")).status_code == 200
        assert (await client.get("/shop/probe", headers={"X-Api-Key": "sfk-1"})).status_code == 200


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    trusted = parse_networks("127.0.0.1, 10.0.0.0/8")

    def scope(peer: str, forwarded: str | None = None) -> Any:
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
        return {"client": (peer, 1234), "headers": headers}

    assert client_address(scope("203.0.113.9", "1.2.3.4"), trusted) == "203.0.113.9"  # not a proxy
    assert client_address(scope("127.0.0.1", "1.2.3.4"), trusted) == "1.2.3.4"
    # the client may forge what it sends first; the right-most untrusted hop is what our proxy saw
    assert client_address(scope("127.0.0.1", "6.6.6.6, 1.2.3.4, 10.1.2.3"), trusted) == "1.2.3.4"
    assert client_address(scope("127.0.0.1"), trusted) == "127.0.0.1"
    assert client_address(scope("127.0.0.1", "1.2.3.4"), ()) == "127.0.0.1"  # none configured


def test_limits_keys_are_the_ones_limits_reads_back() -> None:
    for item in Policy.parse("p", "3/second;10/minute;7 per 15 minutes").items:
        assert storage_key(item, "group/who") == item.key_for("group/who")
