"""``GET /v1/recommendations/{user_id}``: a storefront read straight from the recommendations store.

An unknown user gets 200 with an empty ``product_ids`` (and no ``model``): storefronts render a fallback
(best sellers, trending) for new and anonymous shoppers, and a 404 would make every first visit look
like an error in their logs. A malformed user id is a JSON 400; a store outage is a retryable JSON 503.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, Router, get
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter, QueryParameter

from kernel.http.errors import RETRY_AFTER, ErrorRule, error_table
from kernel.http.options import with_options
from kernel.openapi import errors
from read_models.recommendations import (
    MAX_USER_ID_LENGTH,
    USER_ID_PATTERN,
    USER_ID_RULE,
    InvalidUserId,
    RecommendationsStore,
    RecommendationsStoreError,
    validate_user_id,
)

MAX_LIMIT = 100


class RecommendationsResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    user_id: str
    product_ids: list[str]
    model: str | None = None  # None: nothing computed for this user yet (show a fallback)
    generated_at: datetime | None = None


class RecommendationsReader:
    """The read side the route needs: validate, look up, cut to ``limit`` (no HTTP in here)."""

    def __init__(self, store: RecommendationsStore) -> None:
        self.store = store

    async def for_user(self, user_id: str, limit: int | None = None) -> RecommendationsResponse:
        validate_user_id(user_id)
        found = await self.store.get(user_id)
        if found is None:
            return RecommendationsResponse(user_id=user_id, product_ids=[])
        product_ids = list(found.product_ids if limit is None else found.product_ids[:limit])
        return RecommendationsResponse(
            user_id=user_id, product_ids=product_ids, model=found.model, generated_at=found.generated_at
        )


UserId = Annotated[
    str,
    PathParameter(
        description=f"The shopper's id: {USER_ID_RULE}",
        max_length=MAX_USER_ID_LENGTH,
        schema_extra={"pattern": f"^{USER_ID_PATTERN}$"},  # checked by validate_user_id, for its message
    ),
]
Limit = Annotated[
    int | None, QueryParameter(ge=1, le=MAX_LIMIT, description=f"At most this many (1 to {MAX_LIMIT})")
]

RECOMMENDATIONS_ERRORS = error_table(
    ErrorRule(InvalidUserId, 400),
    ErrorRule(
        RecommendationsStoreError,
        503,
        detail="recommendations are temporarily unavailable; retry shortly",
        headers=RETRY_AFTER,
        warning="recommendations store unavailable",
    ),
)


class RecommendationsController(Controller):
    path = "/v1/recommendations"
    tags = ["storefront"]

    @get(
        "/{user_id:str}",
        responses=errors({400: "Malformed user id or limit", 503: "Store down; retry (Retry-After)"}),
    )
    async def get_recommendations(
        self,
        reader: NamedDependency[RecommendationsReader],
        user_id: UserId,
        limit: Limit = None,
    ) -> RecommendationsResponse:
        """Ranked product recommendations for a user, best first (empty for a user with none yet)."""
        return await reader.for_user(user_id, limit)


def recommendations_router(store: RecommendationsStore) -> Router:
    """The route with a reader over the store injected (one instance per app)."""
    reader = RecommendationsReader(store)
    return Router(
        path="/",
        route_handlers=with_options(RecommendationsController),
        dependencies={"reader": Provide(lambda: reader, sync_to_thread=False, use_cache=True)},
    )
