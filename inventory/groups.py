"""Reservations of several SKUs at once (a checkout's lines): all or nothing. No I/O.

A group is one reservation per line, each with the idempotency key ``<group key>#<n>``, all with the
same expiry; both engines decide the lines together (one transaction embedded, one Lua script on the
cluster) and record them in one transaction, so no group is ever partly held. Confirming or releasing a
group also decides all its lines at once: a line that can no longer be confirmed (expired, released)
fails the whole group, and the group's other holds are given back.
"""

from __future__ import annotations

from typing import Final

import msgspec

from inventory.domain import (
    DEFAULT_HOLD_SECONDS,
    MAX_HOLD_SECONDS,
    MIN_HOLD_SECONDS,
    InvalidRequest,
    ReserveRequest,
    validate_identifier,
    validate_quantity,
    validate_sku,
)

MAX_GROUP_LINES: Final = 50
MAX_GROUP_KEY_LENGTH: Final = 120  # leaves room for "#<line>" within an idempotency key's 128


class GroupReserveRequest(msgspec.Struct, frozen=True, kw_only=True):
    lines: tuple[tuple[str, int], ...]  # (sku, quantity), each SKU once
    customer_id: str
    idempotency_key: str
    hold_seconds: int = DEFAULT_HOLD_SECONDS


def line_key(group_key: str, position: int) -> str:
    return f"{group_key}#{position + 1}"


def validate_group(request: GroupReserveRequest) -> GroupReserveRequest:
    if not 1 <= len(request.lines) <= MAX_GROUP_LINES:
        raise InvalidRequest(
            f"a group reservation has 1 to {MAX_GROUP_LINES} lines, got {len(request.lines)}"
        )
    skus = [validate_sku(sku) for sku, _ in request.lines]
    if len(set(skus)) != len(skus):
        raise InvalidRequest("a group reservation names each SKU once")
    for _, quantity in request.lines:
        validate_quantity(quantity)
    validate_identifier(request.customer_id, "customer_id")
    validate_identifier(request.idempotency_key, "Idempotency-Key")
    if len(request.idempotency_key) > MAX_GROUP_KEY_LENGTH:
        raise InvalidRequest(f"a group's Idempotency-Key has at most {MAX_GROUP_KEY_LENGTH} characters")
    if not MIN_HOLD_SECONDS <= request.hold_seconds <= MAX_HOLD_SECONDS:
        raise InvalidRequest(f"hold_seconds must be between {MIN_HOLD_SECONDS} and {MAX_HOLD_SECONDS}")
    return request


def line_requests(request: GroupReserveRequest) -> list[ReserveRequest]:
    """Each line as the single-SKU reservation it is recorded as."""
    return [
        ReserveRequest(
            sku=sku,
            quantity=quantity,
            customer_id=request.customer_id,
            idempotency_key=line_key(request.idempotency_key, i),
            hold_seconds=request.hold_seconds,
        )
        for i, (sku, quantity) in enumerate(request.lines)
    ]
