"""``GET /v1/homepage``: the storefront's front page from the homepage cache, with ETag and 304.

The route is a hot path (kernel.http.hot_path): it reads its two query parameters and two headers from the
ASGI scope and answers pre-encoded bytes as a bare ASGI response, because Litestar's parameter parsing and
``Response`` cost more than the whole cached request path (docs/BENCHMARKS.md: 0.54x ``/healthz`` with
them, the target is 0.8x). The OpenAPI document still lists the parameters (``reads_parameters``), and bad
values are JSON 400s raised like on every other route; a page that was never built and cannot be built
now is a retryable JSON 503.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from litestar import Controller, Request, Router, get
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency, Provide
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.types import Receive, Scope, Send
from redis.exceptions import RedisError

from kernel.http.errors import RETRY_AFTER, ErrorRule, error_table
from kernel.http.hot_path import JsonBytes, first_header
from kernel.http.options import with_options
from kernel.openapi import errors, header, query, reads_parameters
from read_models.homepage.model import (
    REGION_PATTERN,
    HomepageResponse,
    InvalidHomepageRequest,
    Platform,
    validate_region,
)
from read_models.homepage.service import HomepageService, HomepageUnavailable
from read_models.recommendations import MAX_USER_ID_LENGTH, USER_ID_PATTERN, validate_user_id

CACHE_CONTROL = "no-cache"  # clients and proxies may keep it, but revalidate (a 304 is cheap)
_FIXED_HEADERS = ((b"cache-control", CACHE_CONTROL.encode()), (b"vary", b"X-User-Id"))
_PLATFORMS = {p.value: p for p in Platform}

PARAMETERS = reads_parameters(
    query(
        "region",
        Schema(type=OpenAPIType.STRING, max_length=32, pattern=f"^({REGION_PATTERN})?$"),
        "Delivery region for trending and popular lists (empty: every region)",
    ),
    query(
        "platform",
        Schema(type=OpenAPIType.STRING, enum=list(_PLATFORMS), default=Platform.WEB.value),
        "Layout: how many items per section",
    ),
    header(
        "X-User-Id",
        Schema(type=OpenAPIType.STRING, max_length=MAX_USER_ID_LENGTH, pattern=f"^{USER_ID_PATTERN}$"),
        "The shopper, for 'recommended for you'",
    ),
    header("If-None-Match", Schema(type=OpenAPIType.STRING), "ETag of a copy the client holds"),
)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison (what If-None-Match uses) against a list of tags, or ``*``."""
    if not if_none_match:
        return False
    opaque = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == opaque:
            return True
    return False


_PARSED: dict[bytes, tuple[str, Platform]] = {}  # a storefront sends a handful of distinct query strings
_PARSED_MAX = 4096


def parse_query(query_string: bytes) -> tuple[str, Platform]:
    """``region`` and ``platform`` of a query string, remembered (a bounded table: forgotten when full)."""
    parsed = _PARSED.get(query_string)
    if parsed is None:
        parsed = _parse_query(query_string)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[query_string] = parsed
    return parsed


def _parse_query(query_string: bytes) -> tuple[str, Platform]:
    """The last of repeated parameters (as Litestar reads a scalar); others are ignored."""
    region: str | None = None
    platform = Platform.WEB.value
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name == "region":
            region = value
        elif name == "platform":
            platform = value
    chosen = _PLATFORMS.get(platform)
    if chosen is None:
        raise InvalidHomepageRequest(f"invalid platform {platform[:20]!r}: one of {', '.join(_PLATFORMS)}")
    return validate_region(region), chosen


class NotModified(JsonBytes):
    """A bare 304: the validators, no body (and no content headers)."""

    def __init__(self, headers: tuple[tuple[bytes, bytes], ...]) -> None:
        super().__init__(b"", 304, headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 304, "headers": list(self.extra_headers)})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class HomepageController(Controller):
    path = "/v1/homepage"
    tags = ["storefront"]

    @get(
        "/",
        operation_class=PARAMETERS,
        responses={
            200: ResponseSpec(HomepageResponse, description="The page", generate_examples=False),
            304: ResponseSpec(None, description="If-None-Match matched: the client's copy is current"),
            **errors(
                {
                    400: "A bad parameter (region, platform, X-User-Id)",
                    503: "The page was never built and cannot be now; retry (Retry-After)",
                }
            ),
        },
        response_headers=[
            ResponseHeader(
                name="ETag", description="Weak tag of what the page shows", documentation_only=True
            ),
            ResponseHeader(name="Cache-Control", description=CACHE_CONTROL, documentation_only=True),
        ],
    )
    async def homepage(
        self, request: Request[Any, Any, Any], service: NamedDependency[HomepageService]
    ) -> JsonBytes:  # or its NotModified
        """The homepage: trending, new arrivals, deals, top rated per leading category and recommendations
        (the shopper's own with X-User-Id), without sold-out items. 304 for a matching If-None-Match."""
        region, platform = parse_query(request.scope["query_string"])
        user_id = first_header(request, b"x-user-id")
        if user_id is not None:
            validate_user_id(user_id)  # an empty one too: it is no user id
        page = await service.page(region, platform, user_id)
        headers = ((b"etag", page.etag.encode()), *_FIXED_HEADERS)
        if etag_matches(first_header(request, b"if-none-match"), page.etag):
            return NotModified(headers)
        return JsonBytes(page.body, extra_headers=headers)


HOMEPAGE_ERRORS = error_table(
    ErrorRule(InvalidHomepageRequest, 400),
    ErrorRule(HomepageUnavailable, 503, headers=RETRY_AFTER, warning="homepage unavailable"),
)

_CACHE_DOWN = ErrorRule(
    RedisError,
    503,
    detail="the homepage is temporarily unavailable; retry shortly",
    headers=RETRY_AFTER,
    warning="homepage cache unavailable",
)


def homepage_router(service: HomepageService) -> Router:
    return Router(
        path="/",
        route_handlers=with_options(HomepageController),
        dependencies={"service": Provide(lambda: service, sync_to_thread=False, use_cache=True)},
        exception_handlers={RedisError: _CACHE_DOWN},
    )
