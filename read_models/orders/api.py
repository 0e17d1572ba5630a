"""``GET /v1/customers/{customer_id}/orders`` (newest first, cursor paging) and ``GET /v1/orders/{order_id}``:
storefront reads straight from the orders read model, behind the storefront key (a customer's orders are
theirs). An order shows up here once its ``OrderPlaced`` event is projected (the confirm answer itself
already carries the order)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Router, get
from litestar.di import Provide
from litestar.openapi import ResponseSpec
from litestar.params import PathParameter, QueryParameter, SkipValidation

from kernel.http.callers import STOREFRONT, key_of_kind
from kernel.http.errors import RETRY_AFTER, ErrorRule, error_table
from kernel.http.options import with_options
from kernel.openapi import errors
from read_models.orders.port import InvalidCursor, Order, OrdersStore, OrdersStoreError, PageCursor

MAX_LIMIT = 100
DEFAULT_LIMIT = 20


_GUARDS = [key_of_kind(STOREFRONT)]  # per route, not per controller: OPTIONS stays open (kernel.http.options)


class OrderNotFound(LookupError):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"unknown order {order_id!r}")


class OrderOut(msgspec.Struct, kw_only=True):
    order_id: str
    checkout_id: str
    customer_id: str
    status: str
    lines: list[dict[str, object]]
    total: str
    currency: str
    payment_reference: str
    placed_at: str

    @classmethod
    def of(cls, o: Order) -> OrderOut:
        return cls(
            order_id=o.order_id, checkout_id=o.checkout_id, customer_id=o.customer_id, status=o.status,
            lines=[msgspec.structs.asdict(x) for x in o.lines], total=o.total, currency=o.currency,
            payment_reference=o.payment_reference, placed_at=o.placed_at,
        )  # fmt: skip


class OrdersOut(msgspec.Struct, kw_only=True):
    orders: list[OrderOut]
    next_cursor: str | None


ORDERS_ERRORS = error_table(
    ErrorRule(InvalidCursor, 400),
    ErrorRule(OrderNotFound, 404),
    ErrorRule(
        OrdersStoreError,
        503,
        detail="orders are temporarily unavailable; retry shortly",
        headers=RETRY_AFTER,
        warning="orders store unavailable",
    ),
)
Store = SkipValidation[OrdersStore]
CustomerId = Annotated[str, PathParameter(description="The shopper", max_length=128)]
OrderId = Annotated[str, PathParameter(description="As the checkout's confirm answered it", max_length=64)]
Limit = Annotated[
    int, QueryParameter(ge=1, le=MAX_LIMIT, description=f"At most this many (1 to {MAX_LIMIT})")
]
Cursor = Annotated[str | None, QueryParameter(description="next_cursor of the previous page", max_length=200)]
_COMMON = {401: "No or unknown storefront key", 403: "A key that is not a storefront's", 503: "Store down"}


class OrdersController(Controller):
    tags = ["orders"]

    @get(
        "/v1/customers/{customer_id:str}/orders",
        guards=_GUARDS,
        responses={200: ResponseSpec(OrdersOut), **errors({**_COMMON, 400: "Bad cursor or limit"})},
    )
    async def customer_orders(
        self, orders: Store, customer_id: CustomerId, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
    ) -> OrdersOut:
        """The customer's orders, newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
        after = PageCursor.decode(cursor) if cursor else None
        page = await orders.for_customer(customer_id, limit=limit, after=after)
        return OrdersOut(orders=[OrderOut.of(o) for o in page.orders], next_cursor=page.next_cursor)

    @get(
        "/v1/orders/{order_id:str}",
        guards=_GUARDS,
        responses={200: ResponseSpec(OrderOut), **errors({**_COMMON, 404: "Unknown"})},
    )
    async def get_order(self, orders: Store, order_id: OrderId) -> OrderOut:
        found = await orders.get(order_id)
        if found is None:
            raise OrderNotFound(order_id)
        return OrderOut.of(found)


def orders_router(store: OrdersStore) -> Router:
    def provide() -> OrdersStore:
        return store

    return Router(
        path="/",
        route_handlers=with_options(OrdersController),
        dependencies={"orders": Provide(provide, sync_to_thread=False)},
    )
