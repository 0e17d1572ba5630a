"""Who may call what: every route of the app, every kind of caller, one table.

``ACCESS`` names the credential each route needs; the test takes the route list from the app itself, so a
route added without a line here fails (``test_every_route_is_in_the_table``). For each route and each
caller kind the expected answer follows from the route's credential:

- ``anyone``: no caller is refused (401/403 never), whatever key it sends;
- ``admin``: ``Authorization: Bearer <admin token>``; without one 401 (an API key is not one), with a wrong
  one 403;
- ``supplier``: the key of the supplier in the path; no key or a wrong key 401, another supplier's key or
  a storefront's key 403;
- ``storefront``: a storefront's key; no key or a wrong key 401, a supplier's key 403.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from kernel.settings import Settings

TOKEN = "matrix-admin-token"
UNLIMITED = "1000000/second"
PATH_VALUES = {
    "supplier_id": "acme",
    "feed_id": "f" * 32,
    "sku": "acme:SKU-1",  # supplier-scoped, as stock keys are
    "reservation_id": "0" * 32,
    "product_id": "acme:p1",
    "user_id": "u1",
    "file_path": "index.html",  # the storefront page's files
}

ACCESS: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "anyone",
    ("GET", "/readyz"): "anyone",
    ("GET", "/metrics"): "anyone",
    ("GET", "/"): "anyone",  # the storefront page (emporium/web)
    ("GET", "/{file_path}"): "anyone",
    ("HEAD", "/{file_path}"): "anyone",
    ("GET", "/v1/search"): "anyone",
    ("GET", "/v1/suggest"): "anyone",
    ("GET", "/v1/products/{product_id}"): "anyone",
    ("GET", "/v1/recommendations/{user_id}"): "anyone",
    ("GET", "/v1/products/{product_id}/related"): "anyone",
    ("GET", "/v1/trending"): "anyone",
    ("GET", "/v1/stock/{sku}"): "anyone",
    ("PUT", "/v1/stock/{sku}"): "admin",
    ("POST", "/v1/suppliers"): "admin",
    ("POST", "/v1/storefronts"): "admin",
    ("POST", "/v1/suppliers/{supplier_id}/feeds"): "supplier",
    ("POST", "/v1/suppliers/{supplier_id}/stock"): "supplier",
    ("GET", "/v1/suppliers/{supplier_id}/feeds/{feed_id}"): "supplier",
    ("POST", "/v1/reservations"): "storefront",
    ("GET", "/v1/reservations/{reservation_id}"): "storefront",
    ("POST", "/v1/reservations/{reservation_id}/confirm"): "storefront",
    ("DELETE", "/v1/reservations/{reservation_id}"): "storefront",
}

CALLERS = (
    "anonymous",
    "wrong key",
    "wrong admin token",
    "admin",
    "own supplier",
    "other supplier",
    "storefront",
)
ALLOWED, UNAUTHORIZED, FORBIDDEN = "allowed", 401, 403
# the routes that take a JSON body: who may call them is decided before the body is looked at
JSON_ROUTES = (
    ("PUT", "/v1/stock/{sku}"),
    ("POST", "/v1/suppliers"),
    ("POST", "/v1/storefronts"),
    ("POST", "/v1/reservations"),
)
NOT_PLAIN_JSON = {
    "form": ("application/x-www-form-urlencoded", b"sku=acme%3ASKU-1&quantity=1"),
    "deep": ("application/json", b'{"a":' * 100 + b"1" + b"}" * 100),
    "repeated key": ("application/json", b'{"a":1,"a":2}'),
}


def expected(credential: str, caller: str) -> str | int:
    if credential == "anyone":
        return ALLOWED
    if credential == "admin":
        return {"admin": ALLOWED, "wrong admin token": FORBIDDEN}.get(caller, UNAUTHORIZED)
    if credential == "supplier":
        return {
            "own supplier": ALLOWED,
            "other supplier": FORBIDDEN,
            "storefront": FORBIDDEN,
        }.get(caller, UNAUTHORIZED)
    assert credential == "storefront", credential
    return {
        "storefront": ALLOWED,
        "own supplier": FORBIDDEN,
        "other supplier": FORBIDDEN,
    }.get(caller, UNAUTHORIZED)


class Route(NamedTuple):
    method: str
    path: str  # the template, parameters without their type: /v1/stock/{sku}


def app_routes(app: Litestar) -> set[Route]:
    """Every (method, path) the app serves, but the OPTIONS answers and the OpenAPI documents."""
    found = set()
    for route in app.routes:
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        if path.startswith("/docs"):
            continue
        for handler in getattr(route, "route_handlers", ()):
            found.update(Route(method, path) for method in handler.http_methods if method != "OPTIONS")
    return found


class Matrix(NamedTuple):
    client: AsyncTestClient[Litestar]
    headers: dict[str, dict[str, str]]  # caller kind -> what it sends


@pytest.fixture(scope="module")
async def matrix(
    tmp_path_factory: pytest.TempPathFactory,
    embedded_settings: Callable[..., Settings],
    running_app: Callable[..., AbstractAsyncContextManager[Any]],
) -> AsyncIterator[Matrix]:
    data: Path = tmp_path_factory.mktemp("matrix") / "data"
    settings = embedded_settings(
        data, admin_token=TOKEN, rate_limit_anonymous=UNLIMITED, rate_limit_supplier=UNLIMITED
    )
    async with running_app(settings) as running:
        client = running.client
        admin = {"Authorization": f"Bearer {TOKEN}"}
        keys = {}
        for supplier in ("acme", "globex"):
            created = await client.post("/v1/suppliers", json={"supplier_id": supplier}, headers=admin)
            assert created.status_code == 201, created.text
            keys[supplier] = created.json()["api_key"]
        shop = await client.post("/v1/storefronts", json={"storefront_id": "shop"}, headers=admin)
        assert shop.status_code == 201, shop.text
        yield Matrix(
            client,
            {
                "anonymous": {},
                "wrong key": {"X-Api-Key": keys["acme"][:-4] + "AAAA"},
                "wrong admin token": {"Authorization": "Bearer not-the-token"},
                "admin": admin,
                "own supplier": {"X-Api-Key": keys["acme"]},
                "other supplier": {"X-Api-Key": keys["globex"]},
                "storefront": {"X-Api-Key": shop.json()["api_key"]},
            },
        )


async def test_every_route_is_in_the_table(matrix: Matrix) -> None:
    served = app_routes(matrix.client.app)
    missing = sorted(served - {Route(*key) for key in ACCESS})
    gone = sorted({Route(*key) for key in ACCESS} - served)
    assert not missing, f"routes without a line in ACCESS (who may call them?): {missing}"
    assert not gone, f"ACCESS names routes the app does not serve: {gone}"


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "path"), sorted(ACCESS))
async def test_who_may_call_what(matrix: Matrix, method: str, path: str, caller: str) -> None:
    want = expected(ACCESS[(method, path)], caller)
    url = path.format(**PATH_VALUES)
    answer = await matrix.client.request(method, url, headers=matrix.headers[caller])
    if want == ALLOWED:
        assert answer.status_code not in (401, 403), (method, path, caller, answer.text)
    else:
        assert answer.status_code == want, (method, path, caller, answer.text)
        assert answer.json()["status_code"] == want  # the one error shape


def test_the_json_routes_are_in_the_table() -> None:
    assert set(JSON_ROUTES) <= set(ACCESS)


@pytest.mark.parametrize("body", sorted(NOT_PLAIN_JSON))
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
async def test_json_routes_check_the_caller_before_the_body(
    matrix: Matrix, method: str, path: str, caller: str, body: str
) -> None:
    """A caller without the route's credential gets its 401/403 whatever it sends; one with it gets the
    body's refusal (415 for another Content-Type, 400 for deep nesting or a repeated key)."""
    want = expected(ACCESS[(method, path)], caller)
    content_type, content = NOT_PLAIN_JSON[body]
    answer = await matrix.client.request(
        method,
        path.format(**PATH_VALUES),
        content=content,
        headers={**matrix.headers[caller], "Content-Type": content_type},
    )
    if want == ALLOWED:
        assert answer.status_code == (415 if body == "form" else 400), (method, path, caller, answer.text)
    else:
        assert answer.status_code == want, (method, path, caller, answer.text)
    assert answer.json()["status_code"] == answer.status_code  # the one error shape
