"""HTTP routes for suppliers and their feeds, and for registering storefronts.

``POST /v1/suppliers/{supplier_id}/feeds`` answers **201 Created** with the finished feed report
(and a ``Location`` of the report): the import runs while the request is open, so the supplier learns
the outcome of every line in the same call. The body is streamed to a spool file (memory up to
``SPOOL_MEMORY_BYTES``, then disk) while the size limit is enforced, and only then imported: an
oversized (413), empty (400) or unsupported (415) body is refused before anything is published. A
gzip body that grows past the limit once decompressed is a 413 too, as soon as reading reaches the
limit (its report, kept as ``failed``, says what was imported before). If the client goes away
during the import, the import stops at the next chunk or batch (report ``failed``, lease released).

``POST /v1/suppliers/{supplier_id}/stock`` takes a stock feed (rows ``sku, warehouse, quantity``) the same
way and answers the same report; its stock is reservable when the answer arrives.

Registering a supplier or a storefront needs the admin token (``admin_only``); a feed route needs the
API key of the supplier in its path (``api_key_only`` with ``IngestService.authenticate``). Refusals are
the domain's exceptions, answered by ``INGEST_ERRORS``.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, HeaderParameter, QueryParameter
from litestar.router import Router
from litestar.status_codes import HTTP_201_CREATED

from ingest.errors import (
    Conflict,
    Forbidden,
    ImportStop,
    IngestError,
    InvalidRequest,
    NotFound,
    Unauthorized,
)
from ingest.model import FeedReport, Mode
from ingest.parsing import (
    EmptyFeed,
    FeedError,
    FeedFormat,
    FeedLimits,
    FeedTooLarge,
    UnsupportedFeedFormat,
    format_from_content_type,
)
from ingest.profiles import PROFILE_NAMES, UnknownProfile
from ingest.service import IngestService
from ingest.stock_feed import StockFeedService
from ingest.validation import DEFAULT_STOCK_WAREHOUSE, MAX_QUANTITY
from kernel.http.errors import ErrorRule, error_table
from kernel.http.guards import (
    API_KEY_HEADER,
    admin_only,
    admin_token_opt,
    api_key_only,
    api_key_opt,
)
from kernel.http.json_body import json_body_only
from kernel.http.options import with_options
from kernel.openapi import errors
from kernel.settings import Settings

SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
_PROFILE_HELP = f"mapping profile: one of {', '.join(PROFILE_NAMES)}"
_DEFAULT_STOCK_HELP = (
    f"units in warehouse {DEFAULT_STOCK_WAREHOUSE!r} of each product whose line names no stock (for catalogs"
    " without stock columns); absent: such products have no stock until a stock feed or an admin sets it"
)
_FEED_ERRORS = {
    400: "Bad parameter, or a feed that cannot be read at all",
    401: "No or unknown API key",
    403: "The key of another supplier",
    404: "Unknown supplier",
    413: "Body larger than the feed limit (once decompressed, too)",
    415: "Unsupported Content-Type, charset or Content-Encoding",
    422: "A header or stream that cannot be read as this format",
}
_GZIP = ("identity", "gzip", "x-gzip", "")

INGEST_ERRORS = error_table(
    ErrorRule(IngestError, 400),
    ErrorRule(Unauthorized, 401, headers={"WWW-Authenticate": f'ApiKey header="{API_KEY_HEADER}"'}),
    ErrorRule(Forbidden, 403),
    ErrorRule(NotFound, 404),
    ErrorRule(Conflict, 409),
    ErrorRule(InvalidRequest, 422),
    ErrorRule(FeedError, 422),  # a feed that cannot be read as a whole (header, gzip stream)
    ErrorRule(EmptyFeed, 400),
    ErrorRule(UnknownProfile, 400),
    ErrorRule(FeedTooLarge, 413),
    ErrorRule(UnsupportedFeedFormat, 415),
)


class NewSupplier(msgspec.Struct, forbid_unknown_fields=True):
    supplier_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    name: Annotated[str, msgspec.Meta(max_length=200)] | None = None


_CLOSED = {"additionalProperties": False}  # documents forbid_unknown_fields (Litestar does not)
FormatParameter = Annotated[
    Literal["csv", "ndjson", "json"] | None,
    QueryParameter(name="format", description="overrides the Content-Type", required=False),
]


class SupplierCreated(msgspec.Struct):
    supplier_id: str
    name: str
    api_key: str  # shown once; only its hash is stored


Spool = tempfile.SpooledTemporaryFile[bytes]


async def _spool_body(request: Request[Any, Any, Any], limit: int | None) -> Spool:
    declared = request.headers.get("content-length")
    if limit is None:
        limit = 1 << 62
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise FeedTooLarge(f"feed body of {int(declared)} bytes exceeds the limit of {limit} bytes")
    spool: Spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise FeedTooLarge(f"feed body exceeds the limit of {limit} bytes")
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


async def _stop_on_disconnect(request: Request[Any, Any, Any], stop: ImportStop) -> None:
    """Once the body is read, ``receive`` returns only when the client disconnects (or we answered)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    stop.stop("the client disconnected before the import finished; re-push the feed")


def _feed_format(request: Request[Any, Any, Any], override: str | None) -> FeedFormat:
    fmt = FeedFormat(override) if override else format_from_content_type(request.headers.get("content-type"))
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in _GZIP:
        raise UnsupportedFeedFormat(f"unsupported Content-Encoding {encoding!r}; use gzip")
    return fmt


async def _import_body(
    request: Request[Any, Any, Any],
    limits: FeedLimits,
    supplier_id: str,
    format_override: str | None,
    run: Callable[[Spool, FeedFormat, ImportStop], Awaitable[FeedReport]],
) -> Response[FeedReport]:
    """Spool the body, import it with ``run`` (stopped if the client goes away) and answer 201 with the
    report and its ``Location``: what a catalog feed and a stock feed route share."""
    fmt = _feed_format(request, format_override)
    spool = await _spool_body(request, limits.max_bytes)
    stop = ImportStop()
    watcher = asyncio.create_task(_stop_on_disconnect(request, stop))
    try:
        report = await run(spool, fmt, stop)
    finally:
        watcher.cancel()
        spool.close()
    return Response(
        report,
        status_code=HTTP_201_CREATED,
        headers={"Location": f"/v1/suppliers/{supplier_id}/feeds/{report.feed_id}"},
    )


def _register(kind: Literal["supplier", "storefront"]) -> post:
    """The admin route that registers a supplier or a storefront: the same guard, body check and answers."""
    return post(
        "/",
        status_code=HTTP_201_CREATED,
        summary=f"Register a {kind} (admin)",
        guards=[admin_only],
        before_request=json_body_only,  # 415 / 400 for a body that is not plain JSON, before decoding
        responses=errors(
            {
                400: f"The body is not a {kind}, nests deeper than 32 levels or repeats a key",
                401: "No admin bearer token",
                403: "Wrong admin token",
                409: f"The {kind} exists",
                415: "A Content-Type other than application/json",
                422: f"Malformed {kind} id",
            }
        ),
    )


class SupplierController(Controller):
    path = "/v1/suppliers"
    tags = ["supplier feeds"]
    parameters = {
        "authorization": HeaderParameter(annotation=str | None, name="Authorization", required=False)
    }

    @_register("supplier")
    async def add_supplier(
        self,
        service: NamedDependency[IngestService],
        data: Annotated[NewSupplier, Body(media_type=RequestEncodingType.JSON, schema_extra=_CLOSED)],
    ) -> SupplierCreated:
        """Needs ``Authorization: Bearer <EMPORIUM_ADMIN_TOKEN>``; returns the supplier's API key once."""
        record, api_key = await service.add_supplier(data.supplier_id, data.name)
        return SupplierCreated(supplier_id=record.supplier_id, name=record.name, api_key=api_key)


class NewStorefront(msgspec.Struct, forbid_unknown_fields=True):
    storefront_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    name: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class StorefrontCreated(msgspec.Struct):
    storefront_id: str
    name: str
    api_key: str  # shown once; only its hash is stored


class StorefrontController(Controller):
    path = "/v1/storefronts"
    tags = ["storefronts"]
    parameters = {
        "authorization": HeaderParameter(annotation=str | None, name="Authorization", required=False)
    }

    @_register("storefront")
    async def add_storefront(
        self,
        service: NamedDependency[IngestService],
        data: Annotated[NewStorefront, Body(media_type=RequestEncodingType.JSON, schema_extra=_CLOSED)],
    ) -> StorefrontCreated:
        """Needs ``Authorization: Bearer <EMPORIUM_ADMIN_TOKEN>``; returns the storefront's API key once
        (``sfk_...``: send it as ``X-Api-Key`` on customer-facing routes such as reservations)."""
        record, api_key = await service.identities.add_storefront(data.storefront_id, data.name)
        return StorefrontCreated(storefront_id=record.storefront_id, name=record.name, api_key=api_key)


class FeedController(Controller):
    path = "/v1/suppliers/{supplier_id:str}/feeds"
    tags = ["supplier feeds"]
    parameters = {"api_key": HeaderParameter(annotation=str | None, name=API_KEY_HEADER, required=False)}

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Push a catalog feed (CSV, NDJSON or JSON array; gzip optional)",
        guards=[api_key_only],
        responses=errors({**_FEED_ERRORS, 409: "Another import of this supplier is running"}),
        request_max_body_size=None,  # enforced while streaming and decompressing, Settings.feed_max_bytes
    )
    async def push_feed(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[IngestService],
        feed_limits: NamedDependency[FeedLimits],
        supplier_id: FromPath[str],
        profile: Annotated[str, QueryParameter(description=_PROFILE_HELP)] = "canonical",
        mode: Annotated[
            Mode, QueryParameter(description="full also removes products missing from the feed")
        ] = "delta",
        feed_format: FormatParameter = None,
        default_stock: Annotated[
            int | None, QueryParameter(description=_DEFAULT_STOCK_HELP, ge=0, le=MAX_QUANTITY, required=False)
        ] = None,
    ) -> Response[FeedReport]:
        """Import the body; ``Content-Type`` text/csv, application/x-ndjson or application/json."""

        def run(spool: Spool, fmt: FeedFormat, stop: ImportStop) -> Awaitable[FeedReport]:
            return service.import_feed(
                supplier_id,
                spool,
                fmt=fmt,
                profile=profile,
                mode=mode,
                default_stock=default_stock,
                limits=feed_limits,
                stop=stop,
            )

        return await _import_body(request, feed_limits, supplier_id, feed_format, run)

    @get(
        "/{feed_id:str}",
        summary="A feed's report",
        guards=[api_key_only],
        responses=errors(
            {
                400: "Bad parameter",
                401: "No or unknown API key",
                403: "The key of another supplier",
                404: "Unknown feed",
            }
        ),
    )
    async def get_feed(
        self, service: NamedDependency[IngestService], supplier_id: FromPath[str], feed_id: FromPath[str]
    ) -> FeedReport:
        return await service.get_feed(supplier_id, feed_id)


class StockFeedController(Controller):
    path = "/v1/suppliers/{supplier_id:str}/stock"
    tags = ["supplier feeds"]
    parameters = {"api_key": HeaderParameter(annotation=str | None, name=API_KEY_HEADER, required=False)}

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Push a stock feed: rows sku, warehouse, quantity (CSV, NDJSON or JSON array; gzip optional)",
        guards=[api_key_only],
        responses=errors(_FEED_ERRORS),
        request_max_body_size=None,  # enforced while streaming and decompressing, Settings.feed_max_bytes
    )
    async def push_stock(
        self,
        request: Request[Any, Any, Any],
        stock_feeds: NamedDependency[StockFeedService],
        feed_limits: NamedDependency[FeedLimits],
        supplier_id: FromPath[str],
        feed_format: FormatParameter = None,
    ) -> Response[FeedReport]:
        """Set this supplier's stock per warehouse, no catalog needed: each row sets one warehouse's
        quantity of one of its SKUs (the SKU's other warehouses keep theirs; on-hand becomes the sum).
        The report counts lines as a catalog feed's does; a line that would put on-hand below what is
        held and sold is rejected with that reason. The stock is reservable when this answers."""

        def run(spool: Spool, fmt: FeedFormat, stop: ImportStop) -> Awaitable[FeedReport]:
            return stock_feeds.import_stock(supplier_id, spool, fmt=fmt, limits=feed_limits, stop=stop)

        return await _import_body(request, feed_limits, supplier_id, feed_format, run)


def ingest_router(
    service: IngestService, settings: Settings, stock_feeds: StockFeedService | None = None
) -> Router:
    """The supplier routes with the services injected and the guards' secrets set (one per app); the stock
    feed route when there is a stock writer to hand stock to."""
    feed_limits = FeedLimits(settings.feed_max_bytes, settings.feed_max_line_bytes)

    async def check_supplier_key(key: str | None, path_params: Mapping[str, Any]) -> None:
        await service.authenticate(path_params["supplier_id"], key)

    controllers: list[type[Controller]] = [SupplierController, StorefrontController, FeedController]
    if stock_feeds is not None:
        controllers.append(StockFeedController)
    return Router(
        path="/",
        route_handlers=with_options(*controllers),
        dependencies={
            "service": Provide(lambda: service, sync_to_thread=False, use_cache=True),
            "stock_feeds": Provide(lambda: stock_feeds, sync_to_thread=False, use_cache=True),
            "feed_limits": Provide(lambda: feed_limits, sync_to_thread=False, use_cache=True),
        },
        opt={**admin_token_opt(settings.admin_token), **api_key_opt(check_supplier_key)},
    )
