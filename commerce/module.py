"""Commerce module: cart, wishlist and checkout routes over the store and stock holds it is given, the
outbox relay (orders, purchases), the checkout expiry sweep and, with ``inprocess_projectors`` (embedded
default), the price-list consumer (the container starts and closes the store itself). Otherwise the price
list is projected by ``emporium project``, like the read models: API workers that come and go never
rebalance its consumer group, and their readiness does not wait for it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import structlog

from commerce.api import AdmitHold, commerce_router
from commerce.cart_cache import CartCache
from commerce.port import CommerceStore, StockHolds
from commerce.prices import prices_projector
from commerce.service import PRODUCER, CommerceService
from kernel.activity import ActivityMetrics, ActivityPublisher
from kernel.eventlog.outbox import OutboxRelay
from kernel.eventlog.projection import ProjectorMetrics
from kernel.runtime import ReadinessCheck, Runtime
from kernel.tasks import cancel_and_wait

log = structlog.get_logger(__name__)
SWEEP_INTERVAL_S = 1.0


def cart_cache_for(runtime: Runtime, carts: CartCache | None) -> CartCache | None:
    """The cart cache this process may use: a shared one (Redis) always; an in-process one only when this
    process also projects the price list (``inprocess_projectors``), so price changes reach it. (An
    in-process cache also assumes one serving process, as every ``memory://`` cache does.)"""
    if carts is None or carts.shared or runtime.settings.inprocess_projectors:
        return carts
    log.warning(
        "cart cache off: it is in-process (cache_url memory://) but the price list is projected"
        " elsewhere; set EMPORIUM_CACHE_URL=redis://... to cache carts"
    )
    return None


class CommerceModule:
    name = "commerce"

    def __init__(
        self,
        runtime: Runtime,
        *,
        store: CommerceStore,
        holds: StockHolds,
        carts: CartCache | None = None,
        admit_hold: AdmitHold | None = None,
    ) -> None:
        self.runtime = runtime
        self.admit_hold = admit_hold
        self.store = store
        self.carts = cart_cache_for(runtime, carts)
        self.activity = ActivityPublisher(
            runtime.event_log, metrics=ActivityMetrics.of(runtime.metrics), producer=PRODUCER
        )
        self.service = CommerceService(store, holds, activity=self.activity, carts=self.carts)
        self.relay = OutboxRelay(store, runtime.event_log, name="commerce-outbox-relay")
        self.service.on_outbox = self.relay.notify
        self.prices = (
            prices_projector(
                runtime.event_log, store, metrics=ProjectorMetrics.of(runtime.metrics), carts=self.carts
            )
            if runtime.settings.inprocess_projectors
            else None
        )
        self._sweeper: asyncio.Task[None] | None = None
        self._prices_caught_up = False

    def route_handlers(self) -> Sequence[Any]:
        settings = self.runtime.settings
        return [
            commerce_router(
                self.service, max_hold_seconds=settings.max_hold_seconds, admit_hold=self.admit_hold
            )
        ]

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            try:
                if await self.service.expire_due():
                    self.relay.notify()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("checkout expiry sweep failed", error=repr(exc))

    async def start(self) -> None:
        await self.activity.start()
        self.relay.start()
        if self.prices is not None:
            self.prices.start()
        self._sweeper = asyncio.create_task(self._sweep(), name="commerce-checkout-sweeper")

    async def stop(self) -> None:
        await cancel_and_wait([self._sweeper])
        if self.prices is not None:
            await self.prices.stop()
        await self.relay.stop()
        with contextlib.suppress(Exception):
            await self.activity.stop()

    async def prices_caught_up(self) -> None:
        """Readiness: raises until the price list has once taken in every catalog event published before
        (until then a product the storefront shows may not be addable to a cart yet)."""
        if self._prices_caught_up or self.prices is None:
            return
        behind = await self.prices.refresh_lag()
        if behind:
            raise RuntimeError(f"price list catching up: {behind} catalog events to take in")
        self._prices_caught_up = True

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        checks: dict[str, ReadinessCheck] = {"store": self.store.ping}
        if self.carts is not None and self.carts.shared:
            checks["cart_cache"] = self.carts.ping
        if self.prices is not None:
            checks["prices"] = self.prices_caught_up
        return checks
