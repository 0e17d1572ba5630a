"""How long a hold may last and whether a storefront's customer may ask for one: the policy the app
wires into the reservation routes (and that checkouts share), kept apart from the routes themselves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec
from litestar.types import Scope

from inventory.domain import (
    DEFAULT_HOLD_SECONDS,
    MAX_HOLD_SECONDS,
    MIN_HOLD_SECONDS,
    InvalidRequest,
    LimitWindow,
    Reservation,
    ReserveRequest,
    WindowExceeded,
    validate_identifier,
    validate_quantity,
)
from inventory.port import ReservationEngine
from inventory.wire import _ReserveBody

DEFAULT_MAX_HOLD_SECONDS = 15 * 60

AdmitHold = Callable[[str, str, int], Awaitable[None]]
"""``(storefront id, customer id, quantity)``: returns to let the hold be tried, raises to refuse it."""


class CountedLimits(Protocol):
    """Rate limits the engine counts with the reservation, in the same atomic step (an engine with
    ``counts_limit_windows``): the request's windows, what a full one answers, and counting them apart
    for a request refused before it reached the engine (it counts all the same)."""

    def windows(
        self, scope: Scope, storefront_id: str, customer_id: str, quantity: int
    ) -> tuple[LimitWindow, ...]: ...

    def refused(self, exc: WindowExceeded) -> Exception: ...

    async def count_apart(self, scope: Scope, ask: tuple[str, int] | None) -> None: ...


class HoldPolicy:
    """How long a hold may last and whether a storefront's customer may ask for one (rate limits, a cap on
    units held): checked before the engine (``admit``), or counted by the engine itself (``counted``).
    Shared as it is by Litestar's copies of a router's ``opt``."""

    def __init__(
        self,
        max_hold_seconds: int = DEFAULT_MAX_HOLD_SECONDS,
        admit: AdmitHold | None = None,
        counted: CountedLimits | None = None,
    ):
        self.max_hold_seconds = min(max_hold_seconds, MAX_HOLD_SECONDS)
        self.default_hold_seconds = min(DEFAULT_HOLD_SECONDS, self.max_hold_seconds)
        self.admit = admit
        self.counted = counted

    def __deepcopy__(self, memo: dict[int, Any]) -> HoldPolicy:
        return self

    async def check(
        self, scope: Scope, storefront_id: str, fields: _ReserveBody
    ) -> tuple[int, tuple[LimitWindow, ...]]:
        """The hold's seconds, once the policy lets the storefront's customer ask for it, and the windows
        the engine is to count with it."""
        hold = self.default_hold_seconds if fields.hold_seconds is msgspec.UNSET else fields.hold_seconds
        if isinstance(hold, bool) or not isinstance(hold, int):
            raise InvalidRequest(f"hold_seconds must be an integer, got {hold!r}")
        if not MIN_HOLD_SECONDS <= hold <= self.max_hold_seconds:
            raise InvalidRequest(
                f"hold_seconds must be between {MIN_HOLD_SECONDS} and {self.max_hold_seconds}"
            )
        if self.counted is not None:
            quantity = validate_quantity(fields.quantity)
            customer = validate_identifier(fields.customer_id, "customer_id")
            return hold, self.counted.windows(scope, storefront_id, customer, quantity)
        if self.admit is not None:
            quantity = validate_quantity(fields.quantity)
            customer = validate_identifier(fields.customer_id, "customer_id")
            await self.admit(storefront_id, customer, quantity)
        return hold, ()

    async def refused_early(self, scope: Scope) -> None:
        """A request refused before the engine saw it still counts against its caller's limits."""
        if self.counted is not None:
            await self.counted.count_apart(scope, None)

    async def reserve(self, engine: ReservationEngine, request: ReserveRequest, scope: Scope) -> Reservation:
        """``engine.reserve``, a full window answered as the rate limit it stands for."""
        if self.counted is None:
            return await engine.reserve(request)
        try:
            return await engine.reserve(request)
        except WindowExceeded as exc:
            raise self.counted.refused(exc) from None
        except InvalidRequest:  # refused before its windows were counted
            await self.counted.count_apart(scope, (request.customer_id, request.quantity))
            raise
