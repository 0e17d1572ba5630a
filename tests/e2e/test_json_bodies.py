"""Every route that takes a JSON body (per the served OpenAPI document) refuses what is not plain JSON:
another Content-Type, or none, is a 415 (a cross-site form cannot post as application/json), nesting
deeper than 32 levels and a repeated key are a 400, never a 500, and nothing of such a request takes
effect."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from kernel.settings import Settings

ADMIN = {"Authorization": "Bearer json-bodies-admin"}
# PUT /v1/stock takes only supplier-scoped SKUs; every path parameter of a JSON route is filled with it.
DEEP = b'{"a":' * 1000 + b"1" + b"}" * 1000
JUST_DEEP_ENOUGH = b'{"on_hand": 3, "x":' + b"[" * 40 + b"]" * 40 + b"}"
FORMS = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x")


@pytest.fixture(scope="module")
async def client(
    tmp_path_factory: pytest.TempPathFactory,
    embedded_settings: Callable[..., Settings],
    running_app: Callable[..., AbstractAsyncContextManager[Any]],
) -> AsyncIterator[AsyncTestClient]:
    settings = embedded_settings(
        tmp_path_factory.mktemp("json-bodies"),
        admin_token=ADMIN["Authorization"][7:],
        inprocess_projectors=False,
    )
    async with running_app(settings) as app:
        assert (
            await app.client.put("/v1/stock/jb:JB-1", json={"on_hand": 5}, headers=ADMIN)
        ).status_code == 200
        # reservations are a storefront's: every request of these tests carries its key
        shop = await app.client.post("/v1/storefronts", json={"storefront_id": "jb-shop"}, headers=ADMIN)
        assert shop.status_code == 201, shop.text
        app.client.headers["X-Api-Key"] = shop.json()["api_key"]
        yield app.client


async def json_routes(client: AsyncTestClient) -> list[tuple[str, str]]:
    document = (await client.get("/docs/openapi.json")).json()
    routes = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if set(content) == {"application/json"}:
                routes.append((method.upper(), re.sub(r"\{[^}]+\}", "jb:JB-1", path)))
    return routes


async def test_the_json_routes_are_found(client: AsyncTestClient) -> None:
    found = await json_routes(client)
    assert {("POST", "/v1/reservations"), ("PUT", "/v1/stock/jb:JB-1"), ("POST", "/v1/suppliers")} <= set(
        found
    )


@pytest.mark.parametrize("content_type", FORMS)
async def test_another_content_type_is_415(client: AsyncTestClient, content_type: str) -> None:
    valid = b'{"sku":"jb:JB-1","quantity":1,"customer_id":"c","on_hand":4,"supplier_id":"jb-form"}'
    for method, path in await json_routes(client):
        r = await client.request(method, path, content=valid, headers={**ADMIN, "Content-Type": content_type})
        assert r.status_code == 415, (method, path, r.text)
        assert r.json()["status_code"] == 415 and "application/json" in r.json()["detail"]
    stock = (await client.get("/v1/stock/jb:JB-1")).json()
    assert (stock["on_hand"], stock["held"]) == (5, 0)


@pytest.mark.parametrize("content_type", [None, ""], ids=["absent", "empty"])
async def test_no_content_type_is_415(client: AsyncTestClient, content_type: str | None) -> None:
    """A JSON body is read only when it says it is JSON: without a Content-Type it is not guessed at."""
    supplier = "jb-bare" if content_type is None else "jb-empty"
    valid = b'{"sku":"jb:JB-1","quantity":1,"customer_id":"c","on_hand":4,"supplier_id":"%b"}'
    headers = {**ADMIN} if content_type is None else {**ADMIN, "Content-Type": content_type}
    for method, path in await json_routes(client):
        r = await client.request(method, path, content=valid % supplier.encode(), headers=headers)
        assert r.request.headers.get("content-type") == content_type
        assert r.status_code == 415, (method, path, r.text)
        assert r.json()["status_code"] == 415 and "application/json" in r.json()["detail"]
    stock = (await client.get("/v1/stock/jb:JB-1")).json()
    assert (stock["on_hand"], stock["held"]) == (5, 0)
    added = await client.post("/v1/suppliers", json={"supplier_id": supplier}, headers=ADMIN)
    assert added.status_code == 201  # nothing was created by the refused request


@pytest.mark.parametrize("body", [DEEP, JUST_DEEP_ENOUGH], ids=["depth-1000", "depth-41"])
async def test_deep_nesting_is_400(client: AsyncTestClient, body: bytes) -> None:
    for method, path in await json_routes(client):
        r = await client.request(
            method, path, content=body, headers={**ADMIN, "Content-Type": "application/json"}
        )
        assert r.status_code == 400, (method, path, r.text)
        assert "nested deeper than 32" in r.json()["detail"]


async def test_deep_nesting_without_credentials_is_never_500(client: AsyncTestClient) -> None:
    r = await client.post("/v1/suppliers", content=DEEP, headers={"Content-Type": "application/json"})
    assert r.status_code == 401


async def test_a_repeated_key_is_400(client: AsyncTestClient) -> None:
    bodies = {
        "/v1/reservations": b'{"sku":"jb:JB-1","quantity":1,"customer_id":"c","quantity":5}',
        "/v1/stock/jb:JB-1": b'{"on_hand":2,"on_hand":9}',
        "/v1/suppliers": b'{"supplier_id":"jb-a","supplier_id":"jb-b"}',
    }
    for method, path in await json_routes(client):
        body = bodies.get(path, b'{"a":1,"a":2}')
        r = await client.request(
            method, path, content=body, headers={**ADMIN, "Content-Type": "application/json"}
        )
        assert r.status_code == 400, (method, path, r.text)
        assert "duplicate key" in r.json()["detail"]
    stock = (await client.get("/v1/stock/jb:JB-1")).json()
    assert (stock["on_hand"], stock["held"]) == (5, 0)


async def test_plain_json_still_works(client: AsyncTestClient) -> None:
    r = await client.post(
        "/v1/reservations",
        content=b'{"sku":"jb:JB-1","quantity":1,"customer_id":"c:1"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 201, r.text
    r = await client.post("/v1/suppliers", json={"supplier_id": "jb-ok"}, headers=ADMIN)
    assert r.status_code == 201, r.text
