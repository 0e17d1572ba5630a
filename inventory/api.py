"""HTTP API for reservations and stock. Every refusal is a JSON 4xx/503, never a 500.

Reservations are customer-facing writes: every ``/v1/reservations`` route needs a storefront key
(``X-Api-Key: sfk_...``), and the storefront vouches for the ``customer_id`` it sends. A reservation id
is unguessable, so any storefront holding one may read, confirm or release it. The ``HoldPolicy`` the app
wires in caps ``hold_seconds`` and may refuse a storefront's customer (rate limits, units held);
reading stock stays anonymous, setting it needs the admin token.

Bodies are decoded into loosely typed msgspec structs and validated by the domain, so that a
non-integer or out-of-range quantity is a 422 with a clear message (not a generic 400). Handlers call
the engine and let its refusals propagate; ``INVENTORY_ERRORS`` says how each one answers.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Protocol, TypeVar

import msgspec
from litestar import Controller, Request, Router, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ClientException
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import PathParameter, RawBody, SkipValidation
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from prometheus_client import CollectorRegistry

from inventory.domain import (
    DEFAULT_HOLD_SECONDS,
    ID_PATTERN,
    MAX_HOLD_SECONDS,
    MAX_ID_LENGTH,
    MAX_ON_HAND,
    MAX_QUANTITY,
    MAX_SKU_LENGTH,
    MIN_HOLD_SECONDS,
    SKU_PATTERN,
    EngineUnavailable,
    IdempotencyConflict,
    InsufficientStock,
    InvalidRequest,
    InvalidTransition,
    InventoryError,
    LimitExceeded,
    OnHandBelowCommitted,
    ReservationNotFound,
    ReserveRequest,
    Status,
    UnknownSku,
    WarehousesRequired,
    validate_identifier,
    validate_limit,
    validate_on_hand,
    validate_sku,
    validate_warehouses,
)
from inventory.holds import HoldPolicy
from inventory.metrics import ReservationOutcomes
from inventory.port import ReservationEngine
from inventory.sales import SalesRecorder
from inventory.wire import ReservationOut, StockOut, _ReserveBody, _StockBody
from kernel.contracts.identifiers import split_scoped_sku
from kernel.http.callers import STOREFRONT, key_of_kind, request_caller
from kernel.http.errors import RETRY_AFTER, ErrorRule, error_table
from kernel.http.guards import admin_only, admin_token_opt
from kernel.http.hot_path import JsonBytes, first_header, read_body
from kernel.http.json_body import json_body
from kernel.http.limits import RATE_LIMIT_DEFERRED_OPT
from kernel.http.options import with_options
from kernel.openapi import errors, header, reads_json

MAX_BODY = 16 * 1024
INVENTORY_MODULE_OPT = "inventory_module"  # route opt: lets operators and tests find the module from the app
HOLD_POLICY_OPT = "hold_policy"
OUTCOMES_OPT = "reservation_outcomes"
SALES_OPT = "sales"
storefront_only = key_of_kind(STOREFRONT)

INVENTORY_ERRORS = error_table(
    ErrorRule(InventoryError, 400),
    ErrorRule(
        InsufficientStock,
        409,
        extra=lambda e: {"sku": e.sku, "available": e.available, "requested": e.requested},
    ),
    ErrorRule(
        LimitExceeded,
        429,
        extra=lambda e: {
            "sku": e.sku,
            "limit": e.limit,
            "already": e.already,
            "remaining": max(0, e.limit - e.already),
        },
    ),
    ErrorRule(InvalidTransition, 409, extra=lambda e: {"status": e.status.value}),
    ErrorRule(IdempotencyConflict, 409),
    ErrorRule(
        OnHandBelowCommitted,
        409,
        extra=lambda e: {"sku": e.sku, "on_hand": e.on_hand, "held": e.held, "sold": e.sold},
    ),
    ErrorRule(WarehousesRequired, 409, extra=lambda e: {"sku": e.sku, "warehouses": e.warehouses}),
    ErrorRule(ReservationNotFound, 404),
    ErrorRule(UnknownSku, 404),
    ErrorRule(InvalidRequest, 422),
    ErrorRule(EngineUnavailable, 503, headers=RETRY_AFTER),
)


# OpenAPI only: the handlers decode these bodies themselves and the domain validates them, answering 422
# with a message per field.
_ID_DOC: dict[str, Any] = {"pattern": f"^{ID_PATTERN}$", "max_length": MAX_ID_LENGTH}
_ID_SCHEMA = Schema(type=OpenAPIType.STRING, **_ID_DOC)
_SKU_DOC: dict[str, Any] = {
    "pattern": f"^{SKU_PATTERN}$",
    "max_length": MAX_SKU_LENGTH,
    "description": "Supplier-scoped SKU '<supplier_id>:<sku>', as search hits show it",
}
_SKU_SCHEMA = Schema(type=OpenAPIType.STRING, **_SKU_DOC)
_RESERVE_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["sku", "quantity", "customer_id"],
    properties={
        "sku": _SKU_SCHEMA,
        "quantity": Schema(type=OpenAPIType.INTEGER, minimum=1, maximum=MAX_QUANTITY),
        "customer_id": _ID_SCHEMA,
        "hold_seconds": Schema(
            type=OpenAPIType.INTEGER,
            minimum=MIN_HOLD_SECONDS,
            maximum=MAX_HOLD_SECONDS,
            default=DEFAULT_HOLD_SECONDS,
            description="At most the server's EMPORIUM_MAX_HOLD_SECONDS (default 900); more is a 422",
        ),
    },
)
_STOCK_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    description="on_hand, or warehouses (on_hand becomes their sum), or both when they agree",
    properties={
        "on_hand": Schema(type=OpenAPIType.INTEGER, minimum=0, maximum=MAX_ON_HAND),
        "warehouses": Schema(
            type=OpenAPIType.OBJECT,
            additional_properties=Schema(type=OpenAPIType.INTEGER, minimum=0, maximum=MAX_ON_HAND),
            description="Units per warehouse; replaces the breakdown (required when the SKU has one and"
            " the total changes)",
        ),
        "per_customer_limit": Schema(
            one_of=[
                Schema(type=OpenAPIType.INTEGER, minimum=0, maximum=MAX_ON_HAND),
                Schema(type=OpenAPIType.NULL),
            ],
            description="Cap on held + sold per customer; 0 removes it, null keeps it",
        ),
    },
)
# Documented only: the domain checks identifiers, answering 422 with its own message.
Identifier = Annotated[str, PathParameter(schema_extra=_ID_DOC)]
Sku = Annotated[str, PathParameter(schema_extra=_SKU_DOC)]
_IDEMPOTENCY_KEY = header(
    "Idempotency-Key", _ID_SCHEMA, "Repeating a key returns the same reservation and takes nothing more"
)
Engine = NamedDependency[SkipValidation[ReservationEngine]]  # a Protocol: no isinstance check
_UNAVAILABLE = "Engine refusing (rebuilding counters, database down); retry (Retry-After)"
_NO_KEY = "No or unknown storefront key (X-Api-Key)"
_NOT_A_STOREFRONT = "A key that is not a storefront's"
_BAD_BODY = "The body is not a JSON object, nests deeper than 32 levels or repeats a key"
_NOT_JSON = "A Content-Type other than application/json"
_TOO_LARGE = f"Body larger than {MAX_BODY} bytes"

_encoder = msgspec.json.Encoder()
B = TypeVar("B")


def _decode(body_type: type[B], body: bytes, content_type: str | None) -> B:
    """The body's fields: 415 unless sent as JSON, 400 unless one JSON object (kernel.http.json_guard)."""
    fields = json_body(body, content_type)
    if not isinstance(fields, dict):
        raise ClientException(f"invalid JSON body: expected an object, got {type(fields).__name__}")
    return msgspec.convert(fields, body_type)


class ReservationController(Controller):
    path = "/v1/reservations"
    tags = ["inventory"]

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        guards=[storefront_only],
        operation_class=reads_json(_RESERVE_SCHEMA, headers=[_IDEMPOTENCY_KEY]),
        opt={RATE_LIMIT_DEFERRED_OPT: STOREFRONT},  # HoldPolicy counts a storefront's limit (when deferred)
        responses={
            201: ResponseSpec(ReservationOut, description="Reserved (or the same reservation again)"),
            **errors(
                {
                    400: _BAD_BODY,
                    401: _NO_KEY,
                    403: _NOT_A_STOREFRONT,
                    404: "Unknown SKU",
                    409: "Short of stock (``extra.available``) or key reused",
                    413: _TOO_LARGE,
                    415: _NOT_JSON,
                    422: "Invalid sku, quantity, customer id, hold or key",
                    429: "Over the per-customer limit of the SKU (``extra.remaining``), or over a rate"
                    " limit or the units a customer may hold (Retry-After, RateLimit)",
                    503: _UNAVAILABLE,
                }
            ),
        },
    )
    # The hot path: body, header and answer go through kernel.http.hot_path (the reservations-over-HTTP
    # targets of docs/BENCHMARKS.md fail without it); refusals are raised like on every other route.
    async def create_reservation(self, request: Request[Any, Any, Any], engine: Engine) -> JsonBytes:
        """Hold stock for a customer. Body ``{sku, quantity, customer_id[, hold_seconds]}``; send an
        ``Idempotency-Key`` header: repeating it returns the same reservation and takes nothing more."""
        policy: HoldPolicy = request.route_handler.opt[HOLD_POLICY_OPT]
        try:
            body = await read_body(request, MAX_BODY)
            fields = _decode(_ReserveBody, body, first_header(request, b"content-type"))
            hold, windows = await policy.check(request.scope, request_caller(request.scope).id, fields)
        except Exception:
            await policy.refused_early(request.scope)
            raise
        key = first_header(request, b"idempotency-key")  # an empty one is refused (422), not replaced
        # sku, customer id, key and quantity are validated by the engine (422 on refusal)
        request_ = ReserveRequest(
            sku=fields.sku,
            quantity=fields.quantity,
            customer_id=fields.customer_id,
            idempotency_key=f"srv-{uuid.uuid4().hex}" if key is None else key,
            hold_seconds=hold,
            windows=windows,
        )
        with _outcomes(request).track("reserve"):
            reservation = await policy.reserve(engine, request_, request.scope)
        return JsonBytes(_encoder.encode(ReservationOut.of(reservation)), HTTP_201_CREATED)

    @post(
        "/{reservation_id:str}/confirm",
        status_code=200,
        guards=[storefront_only],
        responses={
            200: ResponseSpec(ReservationOut, description="Confirmed (or already confirmed)"),
            **errors(
                {
                    400: "Bad parameter",
                    401: _NO_KEY,
                    403: _NOT_A_STOREFRONT,
                    404: "Unknown reservation",
                    409: "Expired or released (``extra.status``)",
                    422: "Malformed reservation id",
                    503: _UNAVAILABLE,
                }
            ),
        },
    )
    async def confirm_reservation(
        self, request: Request[Any, Any, Any], engine: Engine, reservation_id: Identifier
    ) -> ReservationOut:
        """Turn a live hold into a sale; 409 when it expired or was released. The sale becomes a
        ``Purchased`` activity event (off the request path; ``X-Session-Id`` and ``X-Region`` go with it)."""
        with _outcomes(request).track("confirm"):
            reservation = await engine.confirm(validate_identifier(reservation_id, "reservation id"))
        sales: SalesRecorder | None = request.route_handler.opt.get(SALES_OPT)
        if sales is not None and reservation.status is Status.CONFIRMED:
            region = (first_header(request, b"x-region") or "").strip().upper()[:64]
            session_id = first_header(request, b"x-session-id")
            sales.confirmed(reservation, session_id=session_id, region=region or None)
        return ReservationOut.of(reservation)

    @get(
        "/{reservation_id:str}",
        guards=[storefront_only],
        responses={
            200: ResponseSpec(ReservationOut, description="The reservation and its status"),
            **errors(
                {
                    400: "Bad parameter",
                    401: _NO_KEY,
                    403: _NOT_A_STOREFRONT,
                    404: "Unknown reservation",
                    422: "Malformed reservation id",
                    503: _UNAVAILABLE,
                }
            ),
        },
    )
    async def get_reservation(self, engine: Engine, reservation_id: Identifier) -> ReservationOut:
        reservation = await engine.get_reservation(validate_identifier(reservation_id, "reservation id"))
        return ReservationOut.of(reservation)

    @delete(
        "/{reservation_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        guards=[storefront_only],
        responses={
            204: ResponseSpec(None, description="Released (or already released or expired)"),
            **errors(
                {
                    400: "Bad parameter",
                    401: _NO_KEY,
                    403: _NOT_A_STOREFRONT,
                    404: "Unknown reservation",
                    409: "Already confirmed (``extra.status``)",
                    422: "Malformed reservation id",
                    503: _UNAVAILABLE,
                }
            ),
        },
    )
    async def release_reservation(
        self, request: Request[Any, Any, Any], engine: Engine, reservation_id: Identifier
    ) -> None:
        """Give the held stock back (idempotent); 409 for a confirmed reservation."""
        with _outcomes(request).track("release"):
            await engine.release(validate_identifier(reservation_id, "reservation id"))


class StockController(Controller):
    path = "/v1/stock"
    tags = ["inventory"]

    @get(
        "/{sku:str}",
        responses={
            200: ResponseSpec(StockOut, description="The SKU's stock"),
            **errors({400: "Bad parameter", 404: "Unknown SKU", 422: "Malformed SKU", 503: _UNAVAILABLE}),
        },
    )
    async def get_stock(self, engine: Engine, sku: Sku) -> StockOut:
        """Acknowledged stock of a supplier-scoped SKU (``demo:SYN-000001``): on_hand, held, sold,
        available, and the per-warehouse breakdown when it is known. No stock record: 404 (out of stock)."""
        return StockOut.of(await engine.get_stock(validate_sku(sku)))

    @put(
        "/{sku:str}",
        guards=[admin_only],
        request_max_body_size=MAX_BODY,
        operation_class=reads_json(_STOCK_SCHEMA),
        responses={
            200: ResponseSpec(StockOut, description="The SKU's stock after the change"),
            **errors(
                {
                    400: _BAD_BODY,
                    401: "No admin bearer token",
                    403: "Wrong admin token",
                    409: "on_hand below held + sold (``extra``), or a bare total for a SKU kept per"
                    " warehouse (send ``warehouses``)",
                    413: _TOO_LARGE,
                    415: _NOT_JSON,
                    422: "Malformed or unscoped SKU, on_hand, warehouses or per_customer_limit",
                    503: _UNAVAILABLE,
                }
            ),
        },
    )
    async def put_stock(
        self, request: Request[Any, Any, Any], engine: Engine, sku: Sku, body: RawBody
    ) -> StockOut:
        """Admin: set on-hand, or the per-warehouse breakdown ``warehouses`` (on-hand becomes its sum),
        and optionally ``per_customer_limit`` (0 removes it). Bearer token. The SKU is supplier-scoped
        (``demo:SYN-000001``). On-hand may not drop below held + sold (409, saying why); a SKU kept per
        warehouse takes a new total only as ``warehouses`` (409 otherwise), so the breakdown always sums
        to on-hand.

        Per-customer counts are kept only for SKUs with a limit, so giving a limit to a SKU that had
        none rebuilds the fast-path counters from the database first (reservations answer 503 for
        that moment): set flash-sale limits before the sale opens."""
        fields = _decode(_StockBody, body, request.headers.get("content-type"))
        warehouses = validate_warehouses(fields.warehouses)
        on_hand = fields.on_hand
        if on_hand is not None or warehouses is None:
            on_hand = validate_on_hand(on_hand)
        stock = await engine.set_on_hand(
            _scoped(sku),
            on_hand,
            warehouses=warehouses,
            per_customer_limit=validate_limit(fields.per_customer_limit),
        )
        return StockOut.of(stock)


def _scoped(sku: str) -> str:
    """Stock is created only under a supplier-scoped SKU: a bare code would be stock nothing refers to."""
    validate_sku(sku)
    try:
        split_scoped_sku(sku)
    except ValueError:
        raise InvalidRequest(
            f"sku must be supplier-scoped, '<supplier_id>:<sku>' (as search hits show it), got {sku!r}"
        ) from None
    return sku


class EngineHolder(Protocol):
    @property
    def engine(self) -> ReservationEngine: ...


class EngineRef:
    """Where the routes find the engine: read per request, so the holder may swap it. Litestar deep-copies
    a router's ``opt`` when it registers it; this reference stays shared (the live holder, not a copy)."""

    def __init__(self, holder: EngineHolder) -> None:
        self.holder = holder

    @property
    def engine(self) -> ReservationEngine:
        return self.holder.engine

    def __deepcopy__(self, memo: dict[int, Any]) -> EngineRef:
        return self


def _outcomes(request: Request[Any, Any, Any]) -> ReservationOutcomes:
    outcomes: ReservationOutcomes = request.route_handler.opt[OUTCOMES_OPT]
    return outcomes


def inventory_router(
    holder: EngineHolder,
    admin_token: str | None,
    holds: HoldPolicy | None = None,
    sales: SalesRecorder | None = None,
    outcomes: ReservationOutcomes | None = None,
) -> Router:
    """The reservation and stock routes with the holder's engine injected, the admin token and the hold
    policy set (the storefront key check comes from the app: ``kernel.http.callers.identify_opt``)."""
    ref = EngineRef(holder)

    def provide_engine() -> ReservationEngine:
        return ref.engine

    return Router(
        path="/",
        route_handlers=with_options(ReservationController, StockController),
        dependencies={"engine": Provide(provide_engine, sync_to_thread=False)},
        opt={
            INVENTORY_MODULE_OPT: ref,
            HOLD_POLICY_OPT: holds or HoldPolicy(),
            SALES_OPT: sales,
            OUTCOMES_OPT: outcomes or ReservationOutcomes(CollectorRegistry()),
            **admin_token_opt(admin_token),
        },
    )
