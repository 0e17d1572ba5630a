"""The storefront's requests and responses (msgspec structs, so OpenAPI shows them exactly), their
limits, and the client error raised for a request the service cannot answer."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from search.port import Sort

MAX_QUERY_LENGTH = 200
MAX_PAGE_SIZE = 100
MAX_OFFSET = 10_000  # beyond this, page with the cursor (Elasticsearch's max_result_window)
MAX_SUGGESTIONS = 10
MAX_BRANDS = 50  # brand values per search
DID_YOU_MEAN_BELOW = 5  # a first page with fewer products than this asks for a corrected query


class InvalidRequest(ValueError):
    """A client error; the API answers 400 with ``detail`` and optional ``extra``."""

    def __init__(self, detail: str, extra: dict[str, object] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


class SearchRequest(msgspec.Struct, kw_only=True, frozen=True):
    """Query parameters after type coercion; ``SearchService.plan`` validates the combinations."""

    q: str = ""
    category: str | None = None
    brand: tuple[str, ...] = ()
    price_min: Decimal | None = None
    price_max: Decimal | None = None
    rating_min: float | None = None
    in_stock: bool = True
    deliver_to: str | None = None
    sort: Sort = Sort.RELEVANCE
    page: int = 1
    size: int = 20
    cursor: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    region: str | None = None  # X-Region: the shopper's delivery region, for activity events


class SearchHit(msgspec.Struct, kw_only=True):
    product_id: str
    sku: str
    title: str
    brand: str
    category: str  # "Fashion>Men>Shirts"
    price: Decimal
    currency: str
    in_stock: bool
    rating: float | None = None
    score: float = 0.0
    highlights: dict[str, list[str]] = {}
    eta_hours: int | None = None  # only with deliver_to: best ETA among the warehouses serving the zone


class FacetCount(msgspec.Struct):
    value: str
    count: int


class SearchResponse(msgspec.Struct, kw_only=True):
    hits: list[SearchHit]
    total: int
    facets: dict[str, list[FacetCount]]
    next_cursor: str | None = None
    page: int = 1
    size: int = 20
    # "Did you mean": when the query finds fewer than DID_YOU_MEAN_BELOW products and a corrected query
    # (unknown words replaced by the likeliest catalog words) finds more, that query and its first page.
    # ``hits`` stay the query's own, so its paging is unchanged; search ``corrected_query`` to page on.
    corrected_query: str | None = None
    corrected_hits: list[SearchHit] = []
    corrected_total: int | None = None


class SuggestResponse(msgspec.Struct):
    suggestions: list[str]


class ProductResponse(msgspec.Struct, kw_only=True):
    product_id: str
    supplier_id: str
    sku: str
    title: str
    description: str
    brand: str
    category: str
    category_path: list[str]
    price: Decimal
    currency: str
    rating: float | None
    in_stock: bool  # from the out-of-stock read model (exact), not the index flag
    warehouses: list[str]
    eta_hours: int | None = None
