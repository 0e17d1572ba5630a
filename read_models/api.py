"""Storefront reads of the recommendations store: ``GET /v1/recommendations/{user_id}`` and
``GET /v1/products/{product_id}/related``.

A user with no list of their own gets 200 with the popularity fallback (``source: popular``), or an
empty ``product_ids`` (no ``source``) before any analytics run: storefronts render something for new and
anonymous shoppers, and a 404 would make every first visit look like an error in their logs. Sold-out
products are never in an answer. A malformed id or region is a JSON 400; a store outage is a retryable
JSON 503.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Router, get
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter, QueryParameter

from kernel.http.errors import RETRY_AFTER, ErrorRule, error_table
from kernel.http.options import with_options
from kernel.openapi import errors
from read_models.availability import AvailabilityUnavailable
from read_models.recommendations import (
    MAX_PRODUCT_ID_LENGTH,
    MAX_USER_ID_LENGTH,
    USER_ID_PATTERN,
    USER_ID_RULE,
    InvalidUserId,
    RecommendationsStoreError,
)
from read_models.regions import MAX_REGION_LENGTH, REGION_PATTERN, REGION_RULE, InvalidRegion
from read_models.schemas import RecommendationsResponse, RelatedResponse
from read_models.serving import InvalidProductId, RecommendationsReader

MAX_LIMIT = 100

UserId = Annotated[
    str,
    PathParameter(
        description=f"The shopper's id: {USER_ID_RULE}",
        max_length=MAX_USER_ID_LENGTH,
        schema_extra={"pattern": f"^{USER_ID_PATTERN}$"},  # checked by validate_user_id, for its message
    ),
]
ProductId = Annotated[
    str,
    PathParameter(
        description="Product id, e.g. 'bigbasket:123'",
        max_length=MAX_PRODUCT_ID_LENGTH,
        schema_extra={"pattern": r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$"},
    ),
]
Limit = Annotated[
    int | None, QueryParameter(ge=1, le=MAX_LIMIT, description=f"At most this many (1 to {MAX_LIMIT})")
]
Region = Annotated[
    str,
    QueryParameter(
        description=f"Shopper's region, for the popularity fallback: {REGION_RULE}",
        schema_extra={"pattern": f"^({REGION_PATTERN})?$", "maxLength": MAX_REGION_LENGTH},
    ),
]

_STORE_DOWN = "recommendations are temporarily unavailable; retry shortly"
READ_MODEL_ERRORS = error_table(
    ErrorRule(InvalidUserId, 400),
    ErrorRule(InvalidProductId, 400),
    ErrorRule(InvalidRegion, 400),
    ErrorRule(
        RecommendationsStoreError,
        503,
        detail=_STORE_DOWN,
        headers=RETRY_AFTER,
        warning="recommendations store unavailable",
    ),
    ErrorRule(
        AvailabilityUnavailable,
        503,
        detail=_STORE_DOWN,
        headers=RETRY_AFTER,
        warning="stock read model unavailable to recommendations",
    ),
)


class RecommendationsController(Controller):
    path = "/v1/recommendations"
    tags = ["storefront"]

    @get(
        "/{user_id:str}",
        responses=errors({400: "Malformed user id, limit or region", 503: "Store down; retry (Retry-After)"}),
    )
    async def get_recommendations(
        self,
        reader: NamedDependency[RecommendationsReader],
        user_id: UserId,
        limit: Limit = None,
        region: Region = "",
    ) -> RecommendationsResponse:
        """Products for a user, best first, all buyable now: the user's own list (``source: personal``),
        else the popularity fallback of the region (``source: popular``), else empty."""
        return await reader.for_user(user_id, limit, region)


class RelatedController(Controller):
    path = "/v1/products"
    tags = ["storefront"]

    @get(
        "/{product_id:str}/related",
        responses=errors({400: "Malformed product id or limit", 503: "Store down; retry (Retry-After)"}),
    )
    async def get_related(
        self,
        reader: NamedDependency[RecommendationsReader],
        product_id: ProductId,
        limit: Limit = None,
    ) -> RelatedResponse:
        """Products bought together with this one, best first, all buyable now (empty when none)."""
        return await reader.related(product_id, limit)


def recommendations_router(reader: RecommendationsReader) -> Router:
    """The routes with the reader injected (one instance per app)."""
    return Router(
        path="/",
        route_handlers=with_options(RecommendationsController, RelatedController),
        dependencies={"reader": Provide(lambda: reader, sync_to_thread=False, use_cache=True)},
    )
