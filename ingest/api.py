"""HTTP routes for suppliers and their feeds, and for registering storefronts.

``POST /v1/suppliers/{supplier_id}/feeds`` answers **201 Created** with the finished feed report
(and a ``Location`` of the report): the import runs while the request is open, so the supplier learns
the outcome of every line in the same call. The body is streamed to a spool file (memory up to
``SPOOL_MEMORY_BYTES``, then disk) while the size limit is enforced, and only then imported: an
oversized (413), empty (400) or unsupported (415) body is refused before anything is published.

Registering a supplier or a storefront needs the admin token (``admin_only``); a feed route needs the
API key of the supplier in its path (``api_key_only`` with ``IngestService.authenticate``). Refusals are
the domain's exceptions, answered by ``INGEST_ERRORS``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, HeaderParameter, QueryParameter
from litestar.router import Router
from litestar.status_codes import HTTP_201_CREATED

from ingest.errors import Conflict, Forbidden, IngestError, InvalidRequest, NotFound, Unauthorized
from ingest.model import FeedReport, Mode
from ingest.parsing import (
    EmptyFeed,
    FeedError,
    FeedFormat,
    FeedTooLarge,
    UnsupportedFeedFormat,
    format_from_content_type,
)
from ingest.profiles import PROFILE_NAMES, UnknownProfile
from ingest.service import IngestService
from kernel.http.errors import ErrorRule, error_table
from kernel.http.guards import (
    API_KEY_HEADER,
    admin_only,
    admin_token_opt,
    api_key_only,
    api_key_opt,
)
from kernel.http.options import with_options
from kernel.openapi import errors
from kernel.settings import Settings

SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
_PROFILE_HELP = f"mapping profile: one of {', '.join(PROFILE_NAMES)}"
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


class SupplierCreated(msgspec.Struct):
    supplier_id: str
    name: str
    api_key: str  # shown once; only its hash is stored


async def _spool_body(request: Request[Any, Any, Any], limit: int) -> tempfile.SpooledTemporaryFile[bytes]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise FeedTooLarge(f"feed body of {int(declared)} bytes exceeds the limit of {limit} bytes")
    spool: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)
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


def _feed_format(request: Request[Any, Any, Any], override: str | None) -> FeedFormat:
    fmt = FeedFormat(override) if override else format_from_content_type(request.headers.get("content-type"))
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in _GZIP:
        raise UnsupportedFeedFormat(f"unsupported Content-Encoding {encoding!r}; use gzip")
    return fmt


class SupplierController(Controller):
    path = "/v1/suppliers"
    tags = ["supplier feeds"]
    parameters = {
        "authorization": HeaderParameter(annotation=str | None, name="Authorization", required=False)
    }

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Register a supplier (admin)",
        guards=[admin_only],
        responses=errors(
            {
                400: "The body is not a supplier",
                401: "No admin bearer token",
                403: "Wrong admin token",
                409: "The supplier exists",
                422: "Malformed supplier id",
            }
        ),
    )
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

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Register a storefront (admin)",
        guards=[admin_only],
        responses=errors(
            {
                400: "The body is not a storefront",
                401: "No admin bearer token",
                403: "Wrong admin token",
                409: "The storefront exists",
                422: "Malformed storefront id",
            }
        ),
    )
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
        responses=errors(
            {
                400: "Bad parameter, or a feed that cannot be read at all",
                401: "No or unknown API key",
                403: "The key of another supplier",
                404: "Unknown supplier",
                409: "Another import of this supplier is running",
                413: "Body larger than the feed limit",
                415: "Unsupported Content-Type, charset or Content-Encoding",
                422: "A header or stream that cannot be read as this format",
            }
        ),
        request_max_body_size=None,  # enforced while streaming, with Settings.feed_max_bytes
    )
    async def push_feed(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[IngestService],
        feed_max_bytes: NamedDependency[int],
        supplier_id: FromPath[str],
        profile: Annotated[str, QueryParameter(description=_PROFILE_HELP)] = "canonical",
        mode: Annotated[
            Mode, QueryParameter(description="full also removes products missing from the feed")
        ] = "delta",
        feed_format: Annotated[
            Literal["csv", "ndjson", "json"] | None,
            QueryParameter(name="format", description="overrides the Content-Type", required=False),
        ] = None,
    ) -> Response[FeedReport]:
        """Import the body; ``Content-Type`` text/csv, application/x-ndjson or application/json."""
        fmt = _feed_format(request, feed_format)
        spool = await _spool_body(request, feed_max_bytes)
        try:
            report = await service.import_feed(supplier_id, spool, fmt=fmt, profile=profile, mode=mode)
        finally:
            spool.close()
        return Response(
            report,
            status_code=HTTP_201_CREATED,
            headers={"Location": f"/v1/suppliers/{supplier_id}/feeds/{report.feed_id}"},
        )

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


def ingest_router(service: IngestService, settings: Settings) -> Router:
    """The supplier routes with the service injected and the guards' secrets set (one per app)."""
    feed_max_bytes = settings.feed_max_bytes

    async def check_supplier_key(key: str | None, path_params: Mapping[str, Any]) -> None:
        await service.authenticate(path_params["supplier_id"], key)

    return Router(
        path="/",
        route_handlers=with_options(SupplierController, StorefrontController, FeedController),
        dependencies={
            "service": Provide(lambda: service, sync_to_thread=False, use_cache=True),
            "feed_max_bytes": Provide(lambda: feed_max_bytes, sync_to_thread=False, use_cache=True),
        },
        opt={**admin_token_opt(settings.admin_token), **api_key_opt(check_supplier_key)},
    )
