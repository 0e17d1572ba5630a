"""The reservation hot path's pre-encoded responses: status, JSON body and headers (no I/O)."""

from __future__ import annotations

import warnings

import msgspec

from inventory.api import _fast_json, error_payload
from inventory.domain import EngineUnavailable, InsufficientStock, InvalidRequest, LimitExceeded


def test_refusals_map_to_status_and_json_body() -> None:
    assert error_payload(InsufficientStock("S", 3, 1))[0] == 409
    assert error_payload(InsufficientStock("S", 3, 1))[1]["available"] == 1
    code, body = error_payload(LimitExceeded("S", 2, 2, 1))
    assert (code, body["remaining"]) == (429, 0)
    assert error_payload(InvalidRequest("quantity must be an integer"))[0] == 422


def test_fast_json_503_says_when_to_retry_without_deprecation_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        response = _fast_json(*error_payload(EngineUnavailable("database unavailable")))
    headers = dict(response.encode_headers())
    assert response.status_code == 503
    assert headers[b"retry-after"] == b"1"
    assert headers[b"content-type"] == b"application/json"
    assert msgspec.json.decode(response.body)["detail"] == "database unavailable"


def test_fast_json_success_has_length_and_no_retry_after() -> None:
    response = _fast_json(201, {"reservation_id": "r1"})
    headers = dict(response.encode_headers())
    assert response.status_code == 201
    assert b"retry-after" not in headers
    assert headers[b"content-length"] == str(len(response.body)).encode()
