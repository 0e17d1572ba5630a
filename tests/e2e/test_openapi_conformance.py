"""The served OpenAPI document is the contract: schemathesis fuzzes every operation from it against the
real app (embedded stack, a real uvicorn server) and checks each answer is one the document promises.

Checks, per generated request:
- no 5xx: bad input is a JSON 4xx;
- the status code, content type, headers and body are documented for that operation;
- a request the document calls invalid is refused with a 4xx.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from litestar import Litestar
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from emporium.app import create_app
from kernel.settings import Settings

TOKEN = "openapi-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
CALLER = dict(ADMIN)  # and the key of a storefront, so that generated reservations reach the engine
UNLIMITED = "1000000/second"
EXAMPLES = 40
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
FEED = (
    "product_id,sku,title,brand,category_path,price,currency,rating,stock.wh-north\n"
    "p1,SKU-1,Basmati Rice 5 kg,Daawat,Grocery > Rice,450,INR,4.5,10\n"
    "p2,SKU-2,Men Running Shoes,Puma,Fashion > Men > Footwear,3499,INR,4.4,0\n"
)


@pytest.fixture(scope="module")
def base_url(
    tmp_path_factory: pytest.TempPathFactory,
    embedded_settings: Callable[..., Settings],
    served_app_in_thread: Callable[[Litestar], AbstractContextManager[str]],
) -> Iterator[str]:
    """A real server on its own thread and loop (schemathesis calls it synchronously), with a little
    catalog and stock so that some generated requests reach real data."""
    settings_ = embedded_settings(
        tmp_path_factory.mktemp("openapi") / "data",
        admin_token=TOKEN,
        rate_limit_anonymous=UNLIMITED,  # the fuzzer is one client sending thousands of requests
        rate_limit_storefront=UNLIMITED,
    )
    with served_app_in_thread(create_app(settings_)) as base:
        CALLER["X-Api-Key"] = _seed(base)
        yield base


def _seed(base: str) -> str:
    """A supplier's catalog and stock; returns the key of a storefront."""
    admin = ADMIN
    with httpx.Client(base_url=base, timeout=30) as client:
        created = client.post("/v1/suppliers", json={"supplier_id": "acme", "name": "Acme"}, headers=admin)
        assert created.status_code == 201, created.text
        feed = client.post(
            "/v1/suppliers/acme/feeds",
            content=FEED,
            headers={"X-Api-Key": created.json()["api_key"], "Content-Type": "text/csv"},
        )
        assert feed.status_code == 201 and feed.json()["accepted"] == 2, feed.text
        stock = client.put("/v1/stock/acme:SKU-1", json={"warehouses": {"wh-north": 5}}, headers=admin)
        assert stock.status_code == 200, stock.text
        shop = client.post("/v1/storefronts", json={"storefront_id": "shop"}, headers=admin)
        assert shop.status_code == 201, shop.text
        return str(shop.json()["api_key"])


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_is_documented(base_url: str, mode: GenerationMode) -> None:
    """Every operation, ``EXAMPLES`` generated requests each; all failures are reported together."""
    schema = schemathesis.openapi.from_url(f"{base_url}/docs/openapi.json")
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,  # the same requests every run: a failure is a regression, not a dice roll
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=base_url, headers=dict(CALLER), checks=CHECKS)

        try:
            check()
        except Unsatisfiable:  # negative mode, nothing to make invalid (no parameters, no body)
            assert mode is GenerationMode.NEGATIVE, operation.label
        except (AssertionError, BaseExceptionGroup) as exc:  # report every operation, not the first
            failures[operation.label] = str(exc)[:3000]
    assert not failures, "\n\n".join(f"{label}:\n{why}" for label, why in failures.items())


def test_options_lists_the_documented_methods(base_url: str) -> None:
    document = httpx.get(f"{base_url}/docs/openapi.json").json()
    with httpx.Client(base_url=base_url) as client:
        for path, operations in document["paths"].items():
            url = path.replace("{", "").replace("}", "")  # any value fits each path parameter
            allowed = client.options(url).headers["allow"]
            assert set(allowed.split(", ")) == {*(m.upper() for m in operations), "OPTIONS"}, path
