"""HTTP routes of carts, wishlists and checkouts. Every route needs a storefront key (``X-Api-Key``): the
storefront vouches for the customer it names, as for reservations. Refusals are JSON (``COMMERCE_ERRORS``).

Bodies are decoded loosely and validated by the domain, so that a bad quantity is a 422 with a clear
message; the JSON guard answers 415 for another Content-Type and 400 for a body that is not one object.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Controller, Request, Response, Router, delete, get, post, put
from litestar.di import Provide
from litestar.exceptions import ClientException
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import PathParameter, SkipValidation
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from commerce.domain import (
    MAX_QUANTITY,
    CartFull,
    CheckoutBusy,
    CheckoutClosed,
    CheckoutNotFound,
    CommerceError,
    CommerceUnavailable,
    EmptyCart,
    HoldEnded,
    HoldLimitReached,
    IdempotencyConflict,
    InvalidRequest,
    OrderNotFound,
    OutOfStock,
    PriceChanged,
    UnknownSku,
)
from commerce.service import CommerceService, Shopper
from commerce.views import CartView, CheckoutOut, OrderOut, WishlistOut
from kernel.http.callers import STOREFRONT, key_of_kind, request_caller
from kernel.http.errors import RETRY_AFTER, ErrorRule, error_table
from kernel.http.json_body import json_body
from kernel.http.options import with_options
from kernel.openapi import errors, header, reads_json

MAX_BODY = 16 * 1024
storefront_only = key_of_kind(STOREFRONT)
B = TypeVar("B")
AdmitHold = Callable[[str, str, int], Awaitable[None]]
"""``(storefront id, customer id, units)``: returns to let a hold be tried, raises to refuse it (the
customer's units cap, shared with reservations; wired by the app)."""

COMMERCE_ERRORS = error_table(
    ErrorRule(CommerceError, 400),
    ErrorRule(InvalidRequest, 422),
    ErrorRule(UnknownSku, 404, extra=lambda e: {"sku": e.sku}),
    ErrorRule(CheckoutNotFound, 404),
    ErrorRule(OrderNotFound, 404),
    ErrorRule(CartFull, 409),
    ErrorRule(EmptyCart, 409),
    ErrorRule(
        PriceChanged, 409, extra=lambda e: {"lines": [msgspec.structs.asdict(line) for line in e.lines]}
    ),
    ErrorRule(
        OutOfStock, 409, extra=lambda e: {"sku": e.sku, "available": e.available, "requested": e.requested}
    ),
    ErrorRule(HoldLimitReached, 429, extra=lambda e: {"sku": e.sku, "limit": e.limit, "already": e.already}),
    ErrorRule(CheckoutClosed, 409, extra=lambda e: {"status": e.status.value}),
    ErrorRule(HoldEnded, 409, extra=lambda e: {"status": e.status}),
    ErrorRule(CheckoutBusy, 409, headers=RETRY_AFTER),
    ErrorRule(IdempotencyConflict, 409),
    ErrorRule(CommerceUnavailable, 503, headers=RETRY_AFTER, warning="commerce unavailable"),
)

_NO_KEY, _NOT_A_STOREFRONT = "No or unknown storefront key (X-Api-Key)", "A key that is not a storefront's"
_BAD_BODY = "The body is not a JSON object, nests deeper than 32 levels or repeats a key"
_UNAVAILABLE = "The store or the inventory cannot decide now; retry (Retry-After)"
_COMMON = {401: _NO_KEY, 403: _NOT_A_STOREFRONT, 503: _UNAVAILABLE}
_WRITE = {**_COMMON, 400: _BAD_BODY, 413: f"Body larger than {MAX_BODY} bytes", 415: "Not application/json"}
_QUANTITY_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["quantity"],
    properties={"quantity": Schema(type=OpenAPIType.INTEGER, minimum=1, maximum=MAX_QUANTITY)},
)
_MERGE_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["from"],
    properties={"from": Schema(type=OpenAPIType.STRING, description="The guest cart's id (session id)")},
)
_CHECKOUT_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["customer_id"],
    properties={
        "customer_id": Schema(type=OpenAPIType.STRING),
        "accept_price_changes": Schema(type=OpenAPIType.BOOLEAN, default=False),
        "hold_seconds": Schema(type=OpenAPIType.INTEGER, minimum=1),
    },
)
_CONFIRM_SCHEMA = Schema(
    type=OpenAPIType.OBJECT, properties={"payment_reference": Schema(type=OpenAPIType.STRING)}
)
_IDEMPOTENCY_KEY = header(
    "Idempotency-Key",
    Schema(type=OpenAPIType.STRING, max_length=128),
    "Required: repeating it answers the same checkout",
)
Service = SkipValidation[CommerceService]
CustomerId = Annotated[str, PathParameter(description="The shopper (or a guest cart's session id)")]
Sku = Annotated[
    str, PathParameter(description="Supplier-scoped SKU '<supplier_id>:<sku>', as search hits show")
]
ProductId = Annotated[str, PathParameter(description="A product id, as search hits show it")]
CheckoutId = Annotated[str, PathParameter(description="As POST /v1/checkouts answered it")]
_SAME_CHECKOUT = "The same checkout again (key repeated, or the cart's checkout in progress)"
_UNKNOWN = "Unknown checkout"


_GUARDS = [storefront_only]  # per route, not per controller: OPTIONS stays open (kernel.http.options)


class _QuantityBody(msgspec.Struct):
    quantity: Any = None


class _MergeBody(msgspec.Struct, rename={"source": "from"}):
    source: Any = None


class _CheckoutBody(msgspec.Struct):
    customer_id: Any = None
    accept_price_changes: Any = False
    hold_seconds: Any = None


class _ConfirmBody(msgspec.Struct):
    payment_reference: Any = None


def _decode(body_type: type[B], request: Request[Any, Any, Any], raw: bytes) -> B:
    if len(raw) > MAX_BODY:
        raise ClientException(f"body larger than {MAX_BODY} bytes", status_code=413)
    fields = json_body(raw, request.headers.get("content-type"))
    if not isinstance(fields, dict):
        raise ClientException(f"invalid JSON body: expected an object, got {type(fields).__name__}")
    return msgspec.convert(fields, body_type)


def _shopper(request: Request[Any, Any, Any]) -> Shopper:
    return Shopper(request.headers.get("x-user-id"), request.headers.get("x-session-id"))


class CartController(Controller):
    path = "/v1/carts/{customer_id:str}"
    tags = ["commerce"]

    @get(
        "/",
        guards=_GUARDS,
        responses={200: ResponseSpec(CartView), **errors({**_COMMON, 422: "Malformed customer id"})},
    )
    async def get_cart(self, commerce: Service, customer_id: CustomerId) -> CartView:
        """The cart: each line at its current price (``price_changed`` when it moved since the shopper set
        it), whether its quantity is available now, and the total."""
        return await commerce.cart(customer_id)

    @put(
        "/items/{sku:str}",
        guards=_GUARDS,
        status_code=HTTP_200_OK,
        request_max_body_size=MAX_BODY,
        operation_class=reads_json(_QUANTITY_SCHEMA),
        responses={
            200: ResponseSpec(CartView, description="The cart after the change"),
            **errors({**_WRITE, 404: "Unknown SKU", 409: "Cart full", 422: "Bad sku or quantity"}),
        },
    )
    async def put_item(
        self, request: Request[Any, Any, Any], commerce: Service, customer_id: CustomerId, sku: Sku
    ) -> CartView:
        """Set a line's quantity (``{"quantity": n}``); the line remembers today's price (AddedToCart)."""
        fields = _decode(_QuantityBody, request, await request.body())
        return await commerce.set_item(customer_id, sku, fields.quantity, _shopper(request))

    @delete(
        "/items/{sku:str}",
        guards=_GUARDS,
        status_code=HTTP_200_OK,
        responses={200: ResponseSpec(CartView), **errors({**_COMMON, 422: "Bad sku"})},
    )
    async def delete_item(self, commerce: Service, customer_id: CustomerId, sku: Sku) -> CartView:
        """Remove a line (idempotent)."""
        return await commerce.remove_item(customer_id, sku)

    @post(
        "/merge",
        guards=_GUARDS,
        status_code=HTTP_200_OK,
        request_max_body_size=MAX_BODY,
        operation_class=reads_json(_MERGE_SCHEMA),
        responses={200: ResponseSpec(CartView), **errors({**_WRITE, 422: "Bad ids"})},
    )
    async def merge(
        self, request: Request[Any, Any, Any], commerce: Service, customer_id: CustomerId
    ) -> CartView:
        """Move a guest cart (``{"from": guest_id}``) into this one, in one transaction: quantities of the
        same SKU add up, the guest cart is emptied. Repeating it moves nothing more."""
        fields = _decode(_MergeBody, request, await request.body())
        return await commerce.merge(customer_id, fields.source)


class WishlistController(Controller):
    path = "/v1/wishlists/{customer_id:str}"
    tags = ["commerce"]

    @get(
        "/",
        guards=_GUARDS,
        responses={200: ResponseSpec(WishlistOut), **errors({**_COMMON, 422: "Bad customer id"})},
    )
    async def get_wishlist(self, commerce: Service, customer_id: CustomerId) -> WishlistOut:
        return WishlistOut.of(customer_id, await commerce.wishlist(customer_id))

    @put(
        "/items/{product_id:str}",
        guards=_GUARDS,
        status_code=HTTP_200_OK,
        responses=errors({**_COMMON, 422: "Bad ids"}),
    )
    async def put_wish(
        self, commerce: Service, customer_id: CustomerId, product_id: ProductId
    ) -> WishlistOut:
        """Add a product (idempotent)."""
        return WishlistOut.of(customer_id, await commerce.add_wish(customer_id, product_id))

    @delete(
        "/items/{product_id:str}",
        guards=_GUARDS,
        status_code=HTTP_200_OK,
        responses=errors({**_COMMON, 422: "Bad ids"}),
    )
    async def delete_wish(
        self, commerce: Service, customer_id: CustomerId, product_id: ProductId
    ) -> WishlistOut:
        return WishlistOut.of(customer_id, await commerce.remove_wish(customer_id, product_id))


class CheckoutController(Controller):
    path = "/v1/checkouts"
    tags = ["commerce"]

    @post(
        "/",
        guards=_GUARDS,
        request_max_body_size=MAX_BODY,
        operation_class=reads_json(_CHECKOUT_SCHEMA, headers=[_IDEMPOTENCY_KEY]),
        responses={
            201: ResponseSpec(CheckoutOut, description="Every line held until ``expires_at``"),
            200: ResponseSpec(CheckoutOut, description=_SAME_CHECKOUT),
            **errors(
                {
                    **_WRITE,
                    409: "Empty cart; prices changed (``extra.lines``; send accept_price_changes); a line"
                    " short of stock (``extra.sku``; nothing held)",
                    422: "Missing Idempotency-Key, bad customer id or hold_seconds",
                    429: "Over the per-customer limit of a SKU, or a rate limit",
                }
            ),
        },
    )
    async def create_checkout(
        self, request: Request[Any, Any, Any], commerce: Service
    ) -> Response[CheckoutOut]:
        """Hold every line of the customer's cart, all or nothing, at current prices."""
        fields = _decode(_CheckoutBody, request, await request.body())
        key = request.headers.get("idempotency-key")
        if key is None:
            raise InvalidRequest("send an Idempotency-Key header: repeating it answers the same checkout")
        accept = fields.accept_price_changes
        if not isinstance(accept, bool):
            raise InvalidRequest(f"accept_price_changes must be true or false, got {accept!r}")
        limit: int = request.route_handler.opt["max_hold_seconds"]
        hold = fields.hold_seconds if fields.hold_seconds is not None else min(600, limit)
        if isinstance(hold, bool) or not isinstance(hold, int) or not 1 <= hold <= limit:
            raise InvalidRequest(f"hold_seconds must be an integer between 1 and {limit}")
        admit: AdmitHold | None = request.route_handler.opt.get("admit_hold")
        storefront = request_caller(request.scope).id

        async def admit_units(customer: str, units: int) -> None:
            if admit is not None:
                await admit(storefront, customer, units)

        checkout, created = await commerce.checkout(
            fields.customer_id, key, accept_price_changes=accept, hold_seconds=hold, admit=admit_units
        )
        return Response(CheckoutOut.of(checkout), status_code=HTTP_201_CREATED if created else HTTP_200_OK)

    @get(
        "/{checkout_id:str}",
        guards=_GUARDS,
        responses={200: ResponseSpec(CheckoutOut), **errors({**_COMMON, 404: _UNKNOWN})},
    )
    async def get_checkout(self, commerce: Service, checkout_id: CheckoutId) -> CheckoutOut:
        return CheckoutOut.of(await commerce.get_checkout(checkout_id))

    @post(
        "/{checkout_id:str}/confirm",
        guards=_GUARDS,
        status_code=HTTP_200_OK,
        request_max_body_size=MAX_BODY,
        operation_class=reads_json(_CONFIRM_SCHEMA),
        responses={
            200: ResponseSpec(OrderOut, description="The order (the same one for a repeated confirm)"),
            **errors({**_WRITE, 404: _UNKNOWN, 409: "Expired, released or failed", 422: "Bad body"}),
        },
    )
    async def confirm_checkout(
        self, request: Request[Any, Any, Any], commerce: Service, checkout_id: CheckoutId
    ) -> OrderOut:
        """Sell every held line and place the order (``{"payment_reference": ...}``; payment is outside)."""
        raw = await request.body()
        fields = _decode(_ConfirmBody, request, raw) if raw else _ConfirmBody()
        return OrderOut.of(await commerce.confirm(checkout_id, fields.payment_reference))

    @delete(
        "/{checkout_id:str}",
        guards=_GUARDS,
        status_code=HTTP_204_NO_CONTENT,
        responses=errors({**_COMMON, 404: "Unknown checkout", 409: "Already confirmed"}),
    )
    async def delete_checkout(self, commerce: Service, checkout_id: CheckoutId) -> None:
        """Release every hold (idempotent); 409 once confirmed."""
        await commerce.release(checkout_id)


def commerce_router(
    service: CommerceService, *, max_hold_seconds: int, admit_hold: AdmitHold | None = None
) -> Router:
    def provide() -> CommerceService:
        return service

    return Router(
        path="/",
        route_handlers=with_options(CartController, WishlistController, CheckoutController),
        dependencies={"commerce": Provide(provide, sync_to_thread=False)},
        opt={"max_hold_seconds": max_hold_seconds, "admit_hold": admit_hold},
    )
