"""``GET /v1/trending?window=hour|day&kind=queries|products&region=``: the newest trending list.

A bad window, kind or region is a JSON 400 naming the accepted values; a region with no list of its own
is answered with every region's (``region: ""`` in the answer); before any run the list is empty.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Router, get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from kernel.http.errors import RETRY_AFTER, ErrorRule, error_table
from kernel.openapi import errors
from read_models.api import Limit
from read_models.regions import MAX_REGION_LENGTH, REGION_PATTERN, REGION_RULE
from read_models.schemas import TrendingResponse
from read_models.serving import TrendingReader
from read_models.trending import KINDS, WINDOWS, InvalidTrendingRequest, TrendingStoreError

TRENDING_ERRORS = error_table(
    ErrorRule(InvalidTrendingRequest, 400),
    ErrorRule(
        TrendingStoreError,
        503,
        detail="trending is temporarily unavailable; retry shortly",
        headers=RETRY_AFTER,
        warning="trending store unavailable",
    ),
)


class TrendingController(Controller):
    path = "/v1/trending"
    tags = ["storefront"]

    @get(
        "/",
        responses=errors(
            {400: "Unknown window or kind, malformed region or limit", 503: "Store down; retry (Retry-After)"}
        ),
    )
    async def get_trending(
        self,
        reader: NamedDependency[TrendingReader],
        window: Annotated[
            str, QueryParameter(description="Period of the list", schema_extra={"enum": list(WINDOWS)})
        ] = "day",
        kind: Annotated[
            str,
            QueryParameter(
                description="queries (most searched) or products (most viewed and bought; buyable only)",
                schema_extra={"enum": list(KINDS)},
            ),
        ] = "queries",
        region: Annotated[
            str,
            QueryParameter(
                description=f"Region: {REGION_RULE}",
                schema_extra={"pattern": f"^({REGION_PATTERN})?$", "maxLength": MAX_REGION_LENGTH},
            ),
        ] = "",
        limit: Limit = None,
    ) -> TrendingResponse:
        """What is trending now, best first, with the time-decayed score and the raw count of each entry."""
        return await reader.get(window=window, kind=kind, region=region, limit=limit)


def trending_router(reader: TrendingReader) -> Router:
    return Router(
        path="/",
        route_handlers=[TrendingController],
        dependencies={"reader": Provide(lambda: reader, sync_to_thread=False, use_cache=True)},
    )
