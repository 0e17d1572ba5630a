"""Storefront HTTP API: ``GET /v1/search``, ``GET /v1/suggest``, ``GET /v1/products/{product_id}``.

Handlers only translate HTTP to ``SearchService`` calls; every rule lives in the service. Client errors are
JSON 400s (Litestar's parameter validation for types, ``InvalidRequest`` for combinations), never 500s;
``SEARCH_ERRORS`` joins the app's one error table (kernel.http.errors).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from litestar import Controller, Router, get
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import HeaderParameter, PathParameter, QueryParameter
from redis.exceptions import RedisError

from kernel.http.errors import RETRY_AFTER, ErrorRule, error_table
from kernel.openapi import errors, optional_list, optional_number
from search.port import SearchIndexError, Sort
from search.schemas import (
    MAX_BRANDS,
    MAX_OFFSET,
    MAX_PAGE_SIZE,
    MAX_QUERY_LENGTH,
    MAX_SUGGESTIONS,
    InvalidRequest,
    ProductResponse,
    SearchRequest,
    SearchResponse,
    SuggestResponse,
)
from search.service import SearchService

MAX_ID_LENGTH = 200
UserId = Annotated[str | None, HeaderParameter(name="X-User-Id", required=False, max_length=MAX_ID_LENGTH)]
SessionId = Annotated[
    str | None, HeaderParameter(name="X-Session-Id", required=False, max_length=MAX_ID_LENGTH)
]
Region = Annotated[
    str | None,
    HeaderParameter(
        name="X-Region",
        required=False,
        max_length=64,
        description="The shopper's delivery region, for activity analytics (default: deliver_to)",
    ),
]
Service = NamedDependency[SearchService]


class StorefrontController(Controller):
    path = "/"
    tags = ["storefront"]

    @get(
        "/search",
        responses=errors(
            {
                400: "A bad parameter (type, range, length, unknown sort or zone, stale cursor)",
                503: "A read model is down; retry (Retry-After)",
            }
        ),
    )
    async def search(
        self,
        service: Service,
        user_id: UserId,
        session_id: SessionId,
        region: Region,
        q: Annotated[
            str,
            QueryParameter(
                description=f"Full text, typo-tolerant; at most {MAX_QUERY_LENGTH} chars",
                max_length=MAX_QUERY_LENGTH,
            ),
        ] = "",
        category: Annotated[
            str | None, QueryParameter(description="Category path prefix, e.g. 'Fashion>Men'")
        ] = None,
        brand: Annotated[
            list[str] | None,
            QueryParameter(
                description=f"Brand (repeat for several, at most {MAX_BRANDS})",
                max_items=MAX_BRANDS,
                schema_extra=optional_list(Schema(type=OpenAPIType.STRING, max_length=MAX_QUERY_LENGTH)),
            ),
        ] = None,
        price_min: Annotated[
            Decimal | None, QueryParameter(description=">= 0", schema_extra=optional_number(minimum=0))
        ] = None,
        price_max: Annotated[
            Decimal | None,
            QueryParameter(description=">= 0 and >= price_min", schema_extra=optional_number(minimum=0)),
        ] = None,
        rating_min: Annotated[float | None, QueryParameter(description="0 to 5", ge=0, le=5)] = None,
        in_stock: Annotated[bool, QueryParameter(description="Only items in stock now (exact)")] = True,
        deliver_to: Annotated[
            str | None, QueryParameter(description="Delivery zone code: only items that ship there, with ETA")
        ] = None,
        sort: Annotated[Sort, QueryParameter(description="Result order")] = Sort.RELEVANCE,
        page: Annotated[
            int,
            QueryParameter(
                description=f"1-based page (shallow paging: page * size at most {MAX_OFFSET})",
                ge=1,
                le=MAX_OFFSET,
            ),
        ] = 1,
        size: Annotated[
            int, QueryParameter(description=f"Hits per page, 1 to {MAX_PAGE_SIZE}", ge=1, le=MAX_PAGE_SIZE)
        ] = 20,
        cursor: Annotated[
            str | None,
            QueryParameter(
                description="next_cursor of the previous page, for deep paging (empty: the first page)"
            ),
        ] = None,
    ) -> SearchResponse:
        """Search the catalog: full text with facets, filters, sorting and real-time stock filtering."""
        request = SearchRequest(
            q=q,
            category=category,
            brand=tuple(brand or ()),
            price_min=price_min,
            price_max=price_max,
            rating_min=rating_min,
            in_stock=in_stock,
            deliver_to=deliver_to,
            sort=sort,
            page=page,
            size=size,
            cursor=cursor or None,  # an empty form field is no cursor
            user_id=user_id,
            session_id=session_id,
            region=region,
        )
        return await service.search(request)

    @get(
        "/suggest",
        responses=errors({400: "q missing or too long, or limit out of range", 503: "Index down; retry"}),
    )
    async def suggest(
        self,
        service: Service,
        q: Annotated[
            str, QueryParameter(description="What the shopper typed so far", max_length=MAX_QUERY_LENGTH)
        ],
        limit: Annotated[
            int, QueryParameter(description=f"1 to {MAX_SUGGESTIONS}", ge=1, le=MAX_SUGGESTIONS)
        ] = MAX_SUGGESTIONS,
    ) -> SuggestResponse:
        """Autocomplete: up to 10 completions from titles, brands and categories (typo-tolerant)."""
        return await service.suggest(q, limit)

    @get(
        "/products/{product_id:str}",
        responses=errors(
            {400: "Unknown delivery zone or bad header", 404: "No such product", 503: "Index down; retry"}
        ),
    )
    async def product(
        self,
        service: Service,
        product_id: Annotated[str, PathParameter(description="Product id, e.g. 'bigbasket:123'")],
        user_id: UserId,
        session_id: SessionId,
        region: Region,
        deliver_to: Annotated[str | None, QueryParameter(description="Delivery zone for an ETA")] = None,
    ) -> ProductResponse:
        """One product with its current availability (from the real-time stock read model)."""
        found = await service.product(
            product_id, deliver_to=deliver_to, user_id=user_id, session_id=session_id, region=region
        )
        if found is None:
            raise NotFoundException(f"product {product_id!r} not found")
        return found


SEARCH_ERRORS = error_table(
    ErrorRule(InvalidRequest, 400, extra=lambda e: e.extra),
    ErrorRule(
        SearchIndexError,
        503,
        detail="search is temporarily unavailable; retry shortly",
        headers=RETRY_AFTER,
        warning="storefront read model unavailable",
    ),
)

# The out-of-stock set on Redis raises RedisError as it is. On these routes that means a read model is
# down; elsewhere (inventory) it means something else, so this rule is scoped to the storefront router.
_READ_MODEL_DOWN = ErrorRule(
    RedisError,
    503,
    detail="search is temporarily unavailable; retry shortly",
    headers=RETRY_AFTER,
    warning="storefront read model unavailable",
)


def storefront_router(service: SearchService) -> Router:
    """Routes under /v1 with the service injected (one instance per app)."""

    def provide_service() -> SearchService:
        return service

    return Router(
        path="/v1",
        route_handlers=[StorefrontController],
        dependencies={"service": Provide(provide_service, use_cache=True, sync_to_thread=False)},
        exception_handlers={RedisError: _READ_MODEL_DOWN},
    )
