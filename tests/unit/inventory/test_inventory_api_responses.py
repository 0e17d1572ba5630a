"""The reservation hot path's pre-encoded responses: status, JSON body and headers (no I/O)."""

from __future__ import annotations

import warnings
from typing import Any

import msgspec

from inventory.api import _fast_json, error_payload
from inventory.domain import EngineUnavailable, InsufficientStock, InvalidRequest, LimitExceeded


async def _sent(response: Any) -> tuple[int, dict[bytes, bytes], bytes]:
    """Run the ASGI response; (status, headers, body) as the server would send them."""
    messages: list[Any] = []

    async def send(message: Any) -> None:
        messages.append(message)

    async def receive() -> Any:
        raise AssertionError("a response does not read the request")

    await response({"type": "http"}, receive, send)
    start, body = messages
    assert start["type"] == "http.response.start" and body["more_body"] is False
    return start["status"], dict(start["headers"]), body["body"]


def test_refusals_map_to_status_and_json_body() -> None:
    assert error_payload(InsufficientStock("S", 3, 1))[0] == 409
    assert error_payload(InsufficientStock("S", 3, 1))[1]["available"] == 1
    code, body = error_payload(LimitExceeded("S", 2, 2, 1))
    assert (code, body["remaining"]) == (429, 0)
    assert error_payload(InvalidRequest("quantity must be an integer"))[0] == 422


async def test_fast_json_503_says_when_to_retry_without_deprecation_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        status, headers, body = await _sent(_fast_json(*error_payload(EngineUnavailable("db down"))))
    assert status == 503
    assert headers[b"retry-after"] == b"1"
    assert headers[b"content-type"] == b"application/json"
    assert msgspec.json.decode(body)["detail"] == "db down"


async def test_fast_json_success_has_length_and_no_retry_after() -> None:
    status, headers, body = await _sent(_fast_json(201, {"reservation_id": "r1"}))
    assert status == 201
    assert b"retry-after" not in headers
    assert headers[b"content-length"] == str(len(body)).encode()
    assert msgspec.json.decode(body) == {"reservation_id": "r1"}
