"""HTTP API for reservations and stock (Litestar). Every refusal is a JSON 4xx/503, never a 500.

Bodies are decoded with loosely typed msgspec structs and validated by the domain, so that a
non-integer or out-of-range quantity is a 422 with a clear message (not a generic 400).
"""

from __future__ import annotations

import hmac
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import HttpMethod, Request, Response, delete, get, post, put, route
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import PathParameter
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_201_CREATED,
    HTTP_204_NO_CONTENT,
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from inventory.domain import (
    DEFAULT_HOLD_SECONDS,
    ID_PATTERN,
    MAX_HOLD_SECONDS,
    MAX_ID_LENGTH,
    MAX_ON_HAND,
    MAX_QUANTITY,
    MIN_HOLD_SECONDS,
    EngineUnavailable,
    IdempotencyConflict,
    InsufficientStock,
    InvalidRequest,
    InvalidTransition,
    InventoryError,
    LimitExceeded,
    ReservationNotFound,
    ReserveRequest,
    StockLevel,
    UnknownSku,
    validate_identifier,
    validate_limit,
    validate_on_hand,
)
from inventory.port import ReservationEngine
from kernel.openapi import errors, header, reads_json
from kernel.responses import JsonBytes

MAX_BODY = 16 * 1024


class _ReserveBody(msgspec.Struct):
    sku: Any = None
    quantity: Any = None
    customer_id: Any = None
    hold_seconds: Any = DEFAULT_HOLD_SECONDS


class _StockBody(msgspec.Struct):
    on_hand: Any = None
    per_customer_limit: Any = None


class ReservationOut(msgspec.Struct):
    reservation_id: str
    sku: str
    quantity: int
    customer_id: str
    status: str
    expires_at: str


class StockOut(msgspec.Struct):
    sku: str
    on_hand: int
    held: int
    sold: int
    available: int
    in_stock: bool
    per_customer_limit: int | None
    revision: int
    warehouses: dict[str, int] | None = None  # per warehouse, where the catalog knows them


# OpenAPI only: the handlers read these bodies raw (the reservation hot path skips Litestar's parsing),
# and the domain validates them, answering 422 with a message per field.
_ID_DOC: dict[str, Any] = {"pattern": f"^{ID_PATTERN}$", "max_length": MAX_ID_LENGTH}
_ID_SCHEMA = Schema(type=OpenAPIType.STRING, **_ID_DOC)
_RESERVE_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["sku", "quantity", "customer_id"],
    properties={
        "sku": _ID_SCHEMA,
        "quantity": Schema(type=OpenAPIType.INTEGER, minimum=1, maximum=MAX_QUANTITY),
        "customer_id": _ID_SCHEMA,
        "hold_seconds": Schema(
            type=OpenAPIType.INTEGER,
            minimum=MIN_HOLD_SECONDS,
            maximum=MAX_HOLD_SECONDS,
            default=DEFAULT_HOLD_SECONDS,
        ),
    },
)
_STOCK_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["on_hand"],
    properties={
        "on_hand": Schema(type=OpenAPIType.INTEGER, minimum=0, maximum=MAX_ON_HAND),
        "per_customer_limit": Schema(
            one_of=[
                Schema(type=OpenAPIType.INTEGER, minimum=0, maximum=MAX_ON_HAND),
                Schema(type=OpenAPIType.NULL),
            ],
            description="Cap on held + sold per customer; 0 removes it, null keeps it",
        ),
    },
)
_IDEMPOTENCY_KEY = header(
    "Idempotency-Key", _ID_SCHEMA, "Repeating a key returns the same reservation and takes nothing more"
)
# Documented only: the domain checks identifiers, answering 422 with its own message.
Identifier = Annotated[str, PathParameter(schema_extra=_ID_DOC)]
_UNAVAILABLE = "Engine refusing (rebuilding counters, database down); retry (Retry-After)"


_json = msgspec.json.Encoder()
_reserve_decoder = msgspec.json.Decoder(_ReserveBody)
_stock_decoder = msgspec.json.Decoder(_StockBody)


def _error(code: int, detail: str, **extra: Any) -> Response[dict[str, Any]]:
    return Response({"status_code": code, "detail": detail, **extra}, status_code=code)


def _payload(code: int, detail: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    return code, {"status_code": code, "detail": detail, **extra}


def error_payload(exc: InventoryError) -> tuple[int, dict[str, Any]]:
    """The one mapping from domain refusals to HTTP status and JSON body."""
    if isinstance(exc, InsufficientStock):
        return _payload(
            HTTP_409_CONFLICT, str(exc), sku=exc.sku, available=exc.available, requested=exc.requested
        )
    if isinstance(exc, LimitExceeded):
        return _payload(
            HTTP_429_TOO_MANY_REQUESTS,
            str(exc),
            sku=exc.sku,
            limit=exc.limit,
            already=exc.already,
            remaining=max(0, exc.limit - exc.already),
        )
    if isinstance(exc, InvalidTransition):
        return _payload(HTTP_409_CONFLICT, str(exc), status=exc.status.value)
    if isinstance(exc, IdempotencyConflict):
        return _payload(HTTP_409_CONFLICT, str(exc))
    if isinstance(exc, (ReservationNotFound, UnknownSku)):
        return _payload(HTTP_404_NOT_FOUND, str(exc))
    if isinstance(exc, InvalidRequest):
        return _payload(HTTP_422_UNPROCESSABLE_ENTITY, str(exc))
    if isinstance(exc, EngineUnavailable):
        return _payload(HTTP_503_SERVICE_UNAVAILABLE, str(exc))
    return _payload(HTTP_400_BAD_REQUEST, str(exc))


def error_response(exc: InventoryError) -> Response[dict[str, Any]]:
    code, body = error_payload(exc)
    headers = {"Retry-After": "1"} if code == HTTP_503_SERVICE_UNAVAILABLE else None
    return Response(body, status_code=code, headers=headers)


_RETRY_AFTER = ((b"retry-after", b"1"),)


def _fast_json(code: int, body: dict[str, Any]) -> JsonBytes:
    """Pre-encoded JSON straight to ASGI: the reservation hot path skips response rendering."""
    headers = _RETRY_AFTER if code == HTTP_503_SERVICE_UNAVAILABLE else ()
    return JsonBytes(_json.encode(body), code, headers)


def _header(request: Request[Any, Any, Any], name: bytes) -> str | None:
    for key, value in request.scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def reservation_json(res: Any) -> dict[str, Any]:
    return {
        "reservation_id": res.reservation_id,
        "sku": res.sku,
        "quantity": res.quantity,
        "customer_id": res.customer_id,
        "status": res.status.value,
        "expires_at": _iso(res.expires_at),
    }


def stock_json(stock: StockLevel) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sku": stock.sku,
        "on_hand": stock.on_hand,
        "held": stock.held,
        "sold": stock.sold,
        "available": stock.available,
        "in_stock": stock.in_stock,
        "per_customer_limit": stock.per_customer_limit,
        "revision": stock.revision,
    }
    if stock.warehouses is not None:
        body["warehouses"] = stock.warehouses
    return body


async def _body(request: Request[Any, Any, Any]) -> bytes | Response[dict[str, Any]]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return _error(413, f"body larger than {MAX_BODY} bytes")
    return raw


def _with_options(handlers: list[HTTPRouteHandler]) -> list[HTTPRouteHandler]:
    """``handlers`` preceded by an OPTIONS handler for each path that several of them serve: Litestar 2's
    default one lists only the methods of the first handler registered on a path (litestar#4169, fixed
    in 3.0), unless an OPTIONS handler is registered there first."""
    methods: dict[str, set[str]] = {}
    for handler in handlers:
        for path in handler.paths:
            methods.setdefault(path, set()).update(handler.http_methods)
    return [_options(path, allowed) for path, allowed in methods.items() if len(allowed) > 1] + handlers


def _options(path: str, methods: set[str]) -> HTTPRouteHandler:
    allow = ", ".join(sorted({*methods, "OPTIONS"}))

    @route(path, http_method=[HttpMethod.OPTIONS], include_in_schema=False, sync_to_thread=False)
    def options() -> Response[None]:
        return Response(None, status_code=HTTP_204_NO_CONTENT, headers={"Allow": allow})

    return options


def build_handlers(engine_ref: Any, admin_token: str | None) -> list[Any]:
    """Route handlers bound to ``engine_ref.engine`` (read per call so the module can swap it)."""

    def engine() -> ReservationEngine:
        return engine_ref.engine

    opt = {"inventory_module": engine_ref}  # lets operators/tests find the module from the app

    @post(
        "/v1/reservations",
        tags=["inventory"],
        opt=opt,
        status_code=HTTP_201_CREATED,
        operation_class=reads_json(_RESERVE_SCHEMA, headers=[_IDEMPOTENCY_KEY]),
        responses={
            201: ResponseSpec(ReservationOut, description="Reserved (or the same reservation again)"),
            **errors(
                {
                    400: "The body is not a JSON object",
                    404: "Unknown SKU",
                    409: "Short of stock (``available``) or key reused",
                    413: f"Body larger than {MAX_BODY} bytes",
                    422: "Invalid sku, quantity, customer id, hold or key",
                    429: "Over the per-customer limit (``remaining``)",
                    503: _UNAVAILABLE,
                }
            ),
        },
    )
    async def create_reservation(request: Request[Any, Any, Any]) -> JsonBytes:
        """Hold stock for a customer. Body ``{sku, quantity, customer_id[, hold_seconds]}``; send an
        ``Idempotency-Key`` header: repeating it returns the same reservation and takes nothing more."""
        chunks: list[bytes] = []
        size = 0
        while True:  # the raw ASGI body: cheaper than the generic request stream on the hot path
            message = await request.receive()
            chunk: bytes = message.get("body", b"")  # type: ignore[assignment]
            size += len(chunk)
            if size > MAX_BODY:
                return _fast_json(*_payload(413, f"body larger than {MAX_BODY} bytes"))
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        try:
            body = _reserve_decoder.decode(b"".join(chunks))
        except msgspec.DecodeError as exc:
            return _fast_json(*_payload(HTTP_400_BAD_REQUEST, f"invalid JSON body: {exc}"))
        key = _header(request, b"idempotency-key")  # an empty one is refused (422), not replaced
        if key is None:
            key = f"srv-{uuid.uuid4().hex}"
        try:
            hold = body.hold_seconds
            if isinstance(hold, bool) or not isinstance(hold, int):
                raise InvalidRequest(f"hold_seconds must be an integer, got {hold!r}")
            # sku, customer id, key and quantity are validated by the engine (422 on refusal).
            req = ReserveRequest(
                sku=body.sku,
                quantity=body.quantity,
                customer_id=body.customer_id,
                idempotency_key=key,
                hold_seconds=hold,
            )
            res = await engine().reserve(req)
        except InventoryError as exc:
            return _fast_json(*error_payload(exc))
        return _fast_json(HTTP_201_CREATED, reservation_json(res))

    @post(
        "/v1/reservations/{reservation_id:str}/confirm",
        tags=["inventory"],
        opt=opt,
        status_code=HTTP_200_OK,
        responses={
            200: ResponseSpec(ReservationOut, description="Confirmed (or already confirmed)"),
            **errors(
                {
                    404: "Unknown reservation",
                    409: "Expired or released",
                    422: "Malformed reservation id",
                    503: _UNAVAILABLE,
                }
            ),
        },
    )
    async def confirm_reservation(reservation_id: Identifier) -> Response[dict[str, Any]]:
        """Turn a live hold into a sale; 409 when it expired or was released."""
        try:
            res = await engine().confirm(validate_identifier(reservation_id, "reservation id"))
        except InventoryError as exc:
            return error_response(exc)
        return Response(reservation_json(res), status_code=HTTP_200_OK)

    @get(
        "/v1/reservations/{reservation_id:str}",
        tags=["inventory"],
        opt=opt,
        responses={
            200: ResponseSpec(ReservationOut, description="The reservation and its status"),
            **errors({404: "Unknown reservation", 422: "Malformed reservation id", 503: _UNAVAILABLE}),
        },
    )
    async def get_reservation(reservation_id: Identifier) -> Response[dict[str, Any]]:
        try:
            res = await engine().get_reservation(validate_identifier(reservation_id, "reservation id"))
        except InventoryError as exc:
            return error_response(exc)
        return Response(reservation_json(res), status_code=HTTP_200_OK)

    # Declared 200 because Litestar forbids a body type on 204 handlers; success answers 204 (no body).
    @delete(
        "/v1/reservations/{reservation_id:str}",
        tags=["inventory"],
        opt=opt,
        status_code=HTTP_200_OK,
        responses={
            204: ResponseSpec(None, description="Released (or already released or expired)"),
            **errors(
                {
                    404: "Unknown reservation",
                    409: "Already confirmed",
                    422: "Malformed reservation id",
                    503: _UNAVAILABLE,
                }
            ),
        },
    )
    async def release_reservation(reservation_id: Identifier) -> Response[Any]:
        """Give the held stock back (idempotent); 409 for a confirmed reservation."""
        try:
            await engine().release(validate_identifier(reservation_id, "reservation id"))
        except InventoryError as exc:
            return error_response(exc)
        return Response(None, status_code=HTTP_204_NO_CONTENT)

    @get(
        "/v1/stock/{sku:str}",
        tags=["inventory"],
        opt=opt,
        responses={
            200: ResponseSpec(StockOut, description="The SKU's stock"),
            **errors({404: "Unknown SKU", 422: "Malformed SKU", 503: _UNAVAILABLE}),
        },
    )
    async def get_stock(sku: Identifier) -> Response[dict[str, Any]]:
        """Acknowledged stock of a SKU: on_hand, held, sold, available."""
        try:
            stock = await engine().get_stock(validate_identifier(sku, "sku"))
        except InventoryError as exc:
            return error_response(exc)
        return Response(stock_json(stock), status_code=HTTP_200_OK)

    @put(
        "/v1/stock/{sku:str}",
        tags=["inventory"],
        opt=opt,
        status_code=HTTP_200_OK,
        operation_class=reads_json(_STOCK_SCHEMA),
        responses={
            200: ResponseSpec(StockOut, description="The SKU's stock after the change"),
            **errors(
                {
                    400: "The body is not a JSON object",
                    401: "No admin bearer token",
                    403: "Wrong admin token",
                    413: f"Body larger than {MAX_BODY} bytes",
                    422: "Malformed SKU, on_hand or per_customer_limit",
                    503: _UNAVAILABLE,
                }
            ),
        },
    )
    async def put_stock(sku: Identifier, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        """Admin: set on-hand (and optionally ``per_customer_limit``; 0 removes it). Bearer token.

        Per-customer counts are kept only for SKUs with a limit, so giving a limit to a SKU that had
        none rebuilds the fast-path counters from the database first (reservations answer 503 for
        that moment; about 0.5 s in the chaos tests): set flash-sale limits before the sale opens."""
        auth = request.headers.get("authorization")
        if not auth:
            response = _error(HTTP_401_UNAUTHORIZED, "missing Authorization: Bearer <admin token>")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        scheme, _, token = auth.partition(" ")
        if (
            admin_token is None
            or scheme.lower() != "bearer"
            or not hmac.compare_digest(token.strip().encode(), admin_token.encode())
        ):
            return _error(HTTP_403_FORBIDDEN, "admin token rejected")
        raw = await _body(request)
        if isinstance(raw, Response):
            return raw
        try:
            body = _stock_decoder.decode(raw)
        except msgspec.DecodeError as exc:
            return _error(HTTP_400_BAD_REQUEST, f"invalid JSON body: {exc}")
        try:
            stock = await engine().set_on_hand(
                validate_identifier(sku, "sku"),
                validate_on_hand(body.on_hand),
                per_customer_limit=validate_limit(body.per_customer_limit),
            )
        except InventoryError as exc:
            return error_response(exc)
        return Response(stock_json(stock), status_code=HTTP_200_OK)

    return _with_options(
        [
            create_reservation,
            confirm_reservation,
            get_reservation,
            release_reservation,
            get_stock,
            put_stock,
        ]
    )
