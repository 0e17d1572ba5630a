"""The reservation route's answers: status, JSON body and headers, from a stub engine (no I/O)."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from inventory.api import INVENTORY_ERRORS, inventory_router
from inventory.domain import (
    EngineUnavailable,
    InsufficientStock,
    InvalidRequest,
    InvalidTransition,
    LimitExceeded,
    Reservation,
    ReserveRequest,
    Status,
)
from inventory.holds import HoldPolicy
from kernel.http.callers import Caller, identify_opt
from kernel.http.errors import exception_handlers

BODY = {"sku": "S", "quantity": 1, "customer_id": "c"}
STOREFRONT_KEY = "sfk_test"


async def identify(key: str) -> Caller | None:
    return {STOREFRONT_KEY: Caller("storefront", "shop"), "emp_test": Caller("supplier", "acme")}.get(key)


class StubEngine:
    """Answers every reservation with ``outcome``: a reservation, or a refusal to raise."""

    def __init__(self) -> None:
        self.outcome: Reservation | Exception = EngineUnavailable("not set")

    async def reserve(self, request: ReserveRequest) -> Reservation:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome

    async def confirm(self, reservation_id: str) -> Reservation:
        raise InvalidTransition(reservation_id, Status.EXPIRED, "confirm")


@pytest.fixture
async def api() -> AsyncIterator[tuple[AsyncTestClient[Any], StubEngine]]:
    engine = StubEngine()
    app = Litestar(
        route_handlers=[inventory_router(SimpleNamespace(engine=engine), "token", HoldPolicy(900))],
        exception_handlers=exception_handlers(INVENTORY_ERRORS),
        opt=identify_opt(identify),
    )
    async with AsyncTestClient(app) as client:
        client.headers["X-Api-Key"] = STOREFRONT_KEY
        yield client, engine


async def test_refusals_map_to_status_and_json_body(api: tuple[AsyncTestClient[Any], StubEngine]) -> None:
    client, engine = api
    engine.outcome = InsufficientStock("S", 3, 1)
    short = await client.post("/v1/reservations", json=BODY)
    assert short.status_code == 409
    assert short.json()["extra"]["available"] == 1
    engine.outcome = LimitExceeded("S", 2, 2, 1)
    over = await client.post("/v1/reservations", json=BODY)
    assert (over.status_code, over.json()["extra"]["remaining"]) == (429, 0)
    engine.outcome = InvalidRequest("quantity must be an integer")
    assert (await client.post("/v1/reservations", json=BODY)).status_code == 422
    late = await client.post("/v1/reservations/r1/confirm")
    assert (late.status_code, late.json()["extra"]["status"]) == (409, "expired")


async def test_503_says_when_to_retry_without_deprecation_warnings(
    api: tuple[AsyncTestClient[Any], StubEngine],
) -> None:
    client, engine = api
    engine.outcome = EngineUnavailable("db down")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        response = await client.post("/v1/reservations", json=BODY)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status_code": 503, "detail": "db down"}


async def test_success_has_length_and_no_retry_after(api: tuple[AsyncTestClient[Any], StubEngine]) -> None:
    client, engine = api
    engine.outcome = Reservation(
        reservation_id="r1",
        sku="S",
        quantity=1,
        customer_id="c",
        status=Status.HELD,
        expires_at=0.0,
        created_at=0.0,
        idempotency_key="k",
    )
    response = await client.post("/v1/reservations", json=BODY, headers={"Idempotency-Key": "k"})
    assert response.status_code == 201
    assert "retry-after" not in response.headers
    assert response.headers["content-length"] == str(len(response.content))
    assert response.json()["reservation_id"] == "r1"
    assert response.json()["expires_at"] == "1970-01-01T00:00:00Z"


async def test_reservations_need_a_storefront_key_and_a_capped_hold(
    api: tuple[AsyncTestClient[Any], StubEngine],
) -> None:
    client, engine = api
    engine.outcome = InsufficientStock("S", 3, 1)
    anonymous = await client.post("/v1/reservations", json=BODY, headers={"X-Api-Key": ""})
    assert anonymous.status_code == 401 and "storefront" in anonymous.json()["detail"]
    wrong = await client.post("/v1/reservations", json=BODY, headers={"X-Api-Key": "sfk_nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("ApiKey")
    supplier = await client.post("/v1/reservations", json=BODY, headers={"X-Api-Key": "emp_test"})
    assert supplier.status_code == 403
    assert (await client.delete("/v1/reservations/r1", headers={"X-Api-Key": "emp_test"})).status_code == 403
    too_long = await client.post("/v1/reservations", json={**BODY, "hold_seconds": 901})
    assert too_long.status_code == 422 and "900" in too_long.json()["detail"]
    assert (await client.post("/v1/reservations", json={**BODY, "hold_seconds": 900})).status_code == 409
