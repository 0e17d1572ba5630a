"""The shared HTTP style (kernel.http): every error in one shape, the error table, guards, OPTIONS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from litestar import Controller, Litestar, Router, delete, get, post
from litestar.params import FromPath, FromQuery
from litestar.testing import AsyncTestClient

from kernel.http.errors import RETRY_AFTER, ErrorRule, error_table, exception_handlers
from kernel.http.guards import admin_only, admin_token_opt, api_key_only, api_key_opt
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
