"""``GET /v1/homepage``: the storefront's front page from the homepage cache, with ETag and 304.

The body is pre-encoded by the service (the cached document's default rendering, or a filtered or
personalised one), so the handler only chooses between 200 and 304. Bad parameters are JSON 400s;
a page that was never built and cannot be built now is a retryable JSON 503.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, MediaType, Response, Router, get
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency, Provide
from litestar.params import HeaderParameter, QueryParameter
from redis.exceptions import RedisError

from kernel.http.errors import RETRY_AFTER, ErrorRule, error_table
from kernel.http.options import with_options
from kernel.openapi import errors
from read_models.homepage.model import (
    REGION_PATTERN,
    HomepageResponse,
    InvalidHomepageRequest,
    Platform,
    validate_region,
)
from read_models.homepage.service import HomepageService, HomepageUnavailable
from read_models.recommendations import MAX_USER_ID_LENGTH, validate_user_id

CACHE_CONTROL = "no-cache"  # clients and proxies may keep it, but revalidate (a 304 is cheap)
VARY = "X-User-Id"


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


class HomepageController(Controller):
    path = "/v1/homepage"
    tags = ["storefront"]

    @get(
        "/",
        responses=errors(
            {
                400: "A bad parameter (region, platform, X-User-Id)",
                503: "The page was never built and cannot be now; retry (Retry-After)",
            }
        ),
        response_headers=[
            ResponseHeader(
                name="ETag",
                description="The page's entity tag (send as If-None-Match)",
                documentation_only=True,
            ),
            ResponseHeader(name="Cache-Control", description=CACHE_CONTROL, documentation_only=True),
        ],
    )
    async def homepage(
        self,
        service: NamedDependency[HomepageService],
        region: Annotated[
            str | None,
            QueryParameter(
                description="Delivery region for trending and popular lists (empty: every region)",
                max_length=32,
                schema_extra={"pattern": f"^({REGION_PATTERN})?$"},  # checked by validate_region
            ),
        ] = None,
        platform: Annotated[Platform, QueryParameter(description="Layout: section sizes")] = Platform.WEB,
        user_id: Annotated[
            str | None,
            HeaderParameter(
                name="X-User-Id",
                required=False,
                max_length=MAX_USER_ID_LENGTH,
                description="The shopper, for 'recommended for you'",
            ),
        ] = None,
        if_none_match: Annotated[
            str | None, HeaderParameter(name="If-None-Match", required=False, description="ETag of a copy")
        ] = None,
    ) -> Response[HomepageResponse]:  # the body comes pre-encoded (bytes of a HomepageResponse)
        """The homepage: trending, new arrivals, deals, top rated per leading category and recommendations
        (the shopper's own with X-User-Id), without sold-out items. 304 for a matching If-None-Match."""
        if user_id:
            validate_user_id(user_id)
        page = await service.page(validate_region(region), platform, user_id or None)
        headers = {"ETag": page.etag, "Cache-Control": CACHE_CONTROL, "Vary": VARY}
        if etag_matches(if_none_match, page.etag):
            return Response(content=b"", status_code=304, headers=headers)  # type: ignore[arg-type]
        return Response(content=page.body, media_type=MediaType.JSON, headers=headers)  # type: ignore[arg-type]


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
