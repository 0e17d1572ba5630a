"""HTTP routes for suppliers and their feeds.

``POST /v1/suppliers/{supplier_id}/feeds`` answers **201 Created** with the finished feed report
(and a ``Location`` of the report): the import runs while the request is open, so the supplier learns
the outcome of every line in the same call. The body is streamed to a spool file (memory up to
``SPOOL_MEMORY_BYTES``, then disk) while the size limit is enforced, and only then imported: an
oversized (413), empty (400) or unsupported (415) body is refused before anything is published.
"""

from __future__ import annotations

import hmac
import tempfile
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
)
from litestar.params import Body, FromPath, HeaderParameter, QueryParameter
from litestar.router import Router
from litestar.status_codes import HTTP_201_CREATED

from ingest.model import FeedReport, Mode
from ingest.parsing import FeedError, FeedFormat, FeedTooLarge, format_from_content_type
from ingest.profiles import PROFILE_NAMES
from ingest.service import IngestError, IngestService
from kernel.openapi import errors
from kernel.settings import Settings

SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
API_KEY_HEADER = "X-Api-Key"
_PROFILE_HELP = f"mapping profile: one of {', '.join(PROFILE_NAMES)}"


class NewSupplier(msgspec.Struct, forbid_unknown_fields=True):
    supplier_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    name: Annotated[str, msgspec.Meta(max_length=200)] | None = None


_CLOSED = {"additionalProperties": False}  # documents forbid_unknown_fields (Litestar does not)


class SupplierCreated(msgspec.Struct):
    supplier_id: str
    name: str
    api_key: str  # shown once; only its hash is stored


class IngestApi:
    """What the handlers need, provided through Litestar DI."""

    def __init__(self, service: IngestService, settings: Settings) -> None:
        self.service = service
        self.settings = settings


class ConflictError(HTTPException):
    status_code = 409


class PayloadTooLarge(HTTPException):
    status_code = 413


class UnsupportedMediaType(HTTPException):
    status_code = 415


class Unprocessable(HTTPException):
    status_code = 422


_ERRORS: dict[int, type[HTTPException]] = {
    cls.status_code: cls
    for cls in (
        ClientException,
        NotAuthorizedException,
        PermissionDeniedException,
        NotFoundException,
        ConflictError,
        PayloadTooLarge,
        UnsupportedMediaType,
        Unprocessable,
    )
}
_FEED_ERRORS = list(_ERRORS.values())


def _http_error(exc: IngestError | FeedError) -> HTTPException:
    """Domain error -> the JSON HTTP error the app's handler renders."""
    headers = {"WWW-Authenticate": f'ApiKey header="{API_KEY_HEADER}"'} if exc.status_code == 401 else None
    return _ERRORS.get(exc.status_code, ClientException)(detail=exc.reason, headers=headers)


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


class SupplierController(Controller):
    path = "/v1/suppliers"
    tags = ["supplier feeds"]

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Register a supplier (admin)",
        raises=[NotAuthorizedException, PermissionDeniedException, ConflictError, Unprocessable],
    )
    async def add_supplier(
        self,
        ingest_api: NamedDependency[IngestApi],
        data: Annotated[NewSupplier, Body(media_type=RequestEncodingType.JSON, schema_extra=_CLOSED)],
        authorization: Annotated[str | None, HeaderParameter(name="Authorization", required=False)] = None,
    ) -> SupplierCreated:
        """Needs ``Authorization: Bearer <EMPORIUM_ADMIN_TOKEN>``; returns the supplier's API key once."""
        token = ingest_api.settings.admin_token
        if not authorization or not authorization.lower().startswith("bearer "):
            raise NotAuthorizedException(
                detail="missing admin bearer token", headers={"WWW-Authenticate": "Bearer"}
            )
        if not token or not hmac.compare_digest(authorization[7:].strip().encode(), token.encode()):
            raise PermissionDeniedException(detail="invalid admin token (or EMPORIUM_ADMIN_TOKEN unset)")
        try:
            record, api_key = await ingest_api.service.add_supplier(data.supplier_id, data.name)
        except IngestError as exc:
            raise _http_error(exc) from None
        return SupplierCreated(supplier_id=record.supplier_id, name=record.name, api_key=api_key)

    @post(
        "/{supplier_id:str}/feeds",
        status_code=HTTP_201_CREATED,
        summary="Push a catalog feed (CSV, NDJSON or JSON array; gzip optional)",
        raises=_FEED_ERRORS,
        responses=errors({400: "Bad parameter, or a feed that cannot be read at all"}),  # one 400 schema
        request_max_body_size=None,  # enforced while streaming, with Settings.feed_max_bytes
    )
    async def push_feed(
        self,
        request: Request[Any, Any, Any],
        ingest_api: NamedDependency[IngestApi],
        supplier_id: FromPath[str],
        api_key: Annotated[str | None, HeaderParameter(name=API_KEY_HEADER, required=False)] = None,
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
        service = ingest_api.service
        try:
            await service.authenticate(supplier_id, api_key)
            fmt = (
                FeedFormat(feed_format)
                if feed_format
                else format_from_content_type(request.headers.get("content-type"))
            )
            encoding = request.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("identity", "gzip", "x-gzip", ""):
                raise UnsupportedMediaType(detail=f"unsupported Content-Encoding {encoding!r}; use gzip")
            spool = await _spool_body(request, ingest_api.settings.feed_max_bytes)
            try:
                report = await service.import_feed(supplier_id, spool, fmt=fmt, profile=profile, mode=mode)
            finally:
                spool.close()
        except (IngestError, FeedError) as exc:
            raise _http_error(exc) from None
        return Response(
            report,
            status_code=HTTP_201_CREATED,
            headers={"Location": f"/v1/suppliers/{supplier_id}/feeds/{report.feed_id}"},
        )

    @get(
        "/{supplier_id:str}/feeds/{feed_id:str}",
        summary="A feed's report",
        raises=[NotAuthorizedException, PermissionDeniedException, NotFoundException],
    )
    async def get_feed(
        self,
        ingest_api: NamedDependency[IngestApi],
        supplier_id: FromPath[str],
        feed_id: FromPath[str],
        api_key: Annotated[str | None, HeaderParameter(name=API_KEY_HEADER, required=False)] = None,
    ) -> FeedReport:
        try:
            await ingest_api.service.authenticate(supplier_id, api_key)
            return await ingest_api.service.get_feed(supplier_id, feed_id)
        except IngestError as exc:
            raise _http_error(exc) from None


def build_router(api: IngestApi) -> Router:
    return Router(
        path="/",
        route_handlers=[SupplierController],
        dependencies={"ingest_api": Provide(lambda: api, sync_to_thread=False)},
    )
