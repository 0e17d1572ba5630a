"""Storefront search: request validation, the exact out-of-stock filter, cursors, delivery ETAs.

Reads only read models: the search index (full text, filters, facets; near-real-time), the out-of-stock set
(exact and immediate) and the delivery zones. Nothing here touches a database.

Why the page loop: the index's stock flag lags stock events by up to one index refresh, so every page is
checked against the out-of-stock set and the items it knows are gone are dropped. To keep pages full, the
service over-fetches (``size + 5``: the index's own stock filter already removes all but the items that
stocked out since its last refresh) and, if still short, continues after the last hit it looked at
(``search_after``, fetching twice as many each round) until the page is full or the results run out.
Facets are computed for the first page only (``page=1`` without a cursor); later pages return ``{}``:
they would be identical, and aggregations are the most expensive part of a search. The cursor is the sort
key of the last hit *returned*, so dropped items never shift the next page: deep paging neither repeats
nor skips.
"""

from __future__ import annotations

import msgspec
import structlog

from kernel.contracts.events import ProductViewed, SearchPerformed
from search.activity import ActivityPublisher, search_performed
from search.cache import CachedPage, ResultCache
from search.cursor import decode_cursor, encode_cursor, fingerprint
from search.delivery_zones import DeliveryZones, UnknownZone
from search.metrics import SearchMetrics
from search.out_of_stock import OutOfStockSet
from search.port import Hit, InvalidQuery, SearchIndex, SearchQuery, SearchResult
from search.schemas import (
    MAX_BRANDS,
    MAX_OFFSET,
    MAX_PAGE_SIZE,
    MAX_QUERY_LENGTH,
    MAX_SUGGESTIONS,
    FacetCount,
    InvalidRequest,
    ProductResponse,
    SearchHit,
    SearchRequest,
    SearchResponse,
    SuggestResponse,
)

log = structlog.get_logger(__name__)

MAX_FETCH_ROUNDS = 6
OVERFETCH_MARGIN = 5
MAX_FETCH = 4 * MAX_PAGE_SIZE
MAX_CATEGORY_PARTS = 8

_query_key = msgspec.msgpack.Encoder()
encode_json = msgspec.json.Encoder().encode


class Plan(msgspec.Struct, kw_only=True, frozen=True):
    query: SearchQuery
    size: int
    page: int
    fingerprint: str
    zone: str | None


def parse_category(raw: str | None) -> tuple[str, ...]:
    if raw is None or not raw.strip():
        return ()
    parts = tuple(p.strip() for p in raw.split(">"))
    if any(not p for p in parts) or len(parts) > MAX_CATEGORY_PARTS:
        raise InvalidRequest(f"category {raw!r} is not a path like 'Fashion>Men>Shirts'")
    return parts


class SearchService:
    def __init__(
        self,
        *,
        index: SearchIndex,
        stock: OutOfStockSet,
        zones: DeliveryZones,
        activity: ActivityPublisher | None = None,
        metrics: SearchMetrics | None = None,
        cache: ResultCache | None = None,
    ) -> None:
        self.index = index
        self.stock = stock
        self.zones = zones
        self.activity = activity
        self.metrics = metrics
        self.cache = cache
        # prometheus ``labels()`` costs microseconds per call: bind the children once
        self._cache_counts = (
            {r: metrics.cache.labels(r) for r in ("hit", "miss", "page_hit", "page_stale", "page_miss")}
            if metrics is not None
            else None
        )

    def _count_cache(self, result: str) -> None:
        if self._cache_counts is not None:
            self._cache_counts[result].inc()

    async def _index_search(self, query: SearchQuery) -> SearchResult:
        cache = self.cache
        if cache is None:
            return await self.index.search(query)
        key = _query_key.encode(query)
        result = cache.get(key)
        self._count_cache("hit" if result is not None else "miss")
        if result is None:
            stamp = cache.stamp()
            result = await self.index.search(query)
            cache.put(key, stamp, result)
        return result

    # Validation --------------------------------------------------------------------------------

    def plan(self, request: SearchRequest) -> Plan:
        text = request.q.strip()
        if len(text) > MAX_QUERY_LENGTH:
            raise InvalidRequest(f"q is longer than {MAX_QUERY_LENGTH} characters")
        if not 1 <= request.size <= MAX_PAGE_SIZE:
            raise InvalidRequest(f"size must be between 1 and {MAX_PAGE_SIZE}")
        if request.page < 1:
            raise InvalidRequest("page must be 1 or more")
        offset = (request.page - 1) * request.size
        if request.cursor is None and offset + request.size > MAX_OFFSET:
            raise InvalidRequest(f"page * size may not exceed {MAX_OFFSET}; use next_cursor for deep paging")
        for name in ("price_min", "price_max"):
            value = getattr(request, name)
            if value is not None and (not value.is_finite() or value < 0):
                raise InvalidRequest(f"{name} must be a number >= 0")
        if (
            request.price_min is not None
            and request.price_max is not None
            and request.price_min > request.price_max
        ):
            raise InvalidRequest("price_min must not be greater than price_max")
        if request.rating_min is not None and not (0 <= request.rating_min <= 5):
            raise InvalidRequest("rating_min must be between 0 and 5")
        brands = tuple(sorted({b.strip() for b in request.brand if b.strip()}))
        if any(len(b) > MAX_QUERY_LENGTH for b in brands) or len(brands) > MAX_BRANDS:
            raise InvalidRequest("too many or too long brand values")

        zone = request.deliver_to.strip().upper() if request.deliver_to else None
        warehouses: tuple[str, ...] | None = None
        if zone:
            try:
                warehouses = self.zones.warehouses(zone)
            except UnknownZone as exc:
                raise InvalidRequest(f"unknown delivery zone {exc.zone!r}", {"zones": exc.known}) from exc

        query = SearchQuery(
            text=text,
            category=parse_category(request.category),
            brands=brands,
            price_min=request.price_min,
            price_max=request.price_max,
            rating_min=request.rating_min,
            in_stock_only=request.in_stock,
            warehouses=warehouses,
            sort=request.sort,
            limit=request.size,
            offset=offset,
        )
        key = fingerprint(query)
        if request.cursor is not None:
            query = msgspec.structs.replace(query, search_after=decode_cursor(request.cursor, key), offset=0)
        return Plan(query=query, size=request.size, page=request.page, fingerprint=key, zone=zone or None)

    # Queries -----------------------------------------------------------------------------------

    async def search(self, request: SearchRequest) -> SearchResponse:
        plan = self.plan(request)
        response = await self.execute(plan)
        self._performed(plan, request, response.total)
        return response

    async def search_json(self, request: SearchRequest, query_string: bytes | None = None) -> bytes:
        """``search`` rendered as the JSON body of ``GET /v1/search``, reusing a cached rendered page when
        the live out-of-stock set still agrees with every item that page examined.

        The cache key is the whole index query (text, filters, sort, page window), so a reuse is the
        same page the index would give now (``ResultCache.index_changed``: up to a stock-out's grace, its
        ``total`` and facets may still count the item); the stock check makes it the same page the stock
        filter would give now. Pages with ``deliver_to`` are not
        reused: their ETAs follow the delivery-zone model, which changes independently of the index.
        With ``query_string`` (the request's raw one), the page is also remembered under it for
        ``reuse_json``.
        """
        plan = self.plan(request)
        cache = self.cache
        if cache is None or plan.zone is not None:
            response = await self.execute(plan)
            self._performed(plan, request, response.total)
            return encode_json(response)
        key = _query_key.encode(plan.query)
        stamp = cache.stamp()
        cached = cache.get_page(key)
        if cached is not None:
            if await self._still_exact(cached):
                self._count_cache("page_hit")
                performed = self._event(plan, request, cached.total)
                if query_string is not None:  # the same page, remembered under this URL with its event
                    reused = msgspec.structs.replace(cached, performed=performed)
                    cache.put_url(query_string, reused)
                self._emit(performed, request.user_id, request.session_id)
                return cached.body
            self._count_cache("page_stale")
        else:
            self._count_cache("page_miss")
        response, examined, out = await self._execute(plan)
        performed = self._event(plan, request, response.total)
        page = CachedPage(
            encode_json(response), response.total, tuple(examined), frozenset(out), performed, stamp
        )
        cache.put_page(key, page)
        if query_string is not None:
            cache.put_url(query_string, page)
        self._emit(performed, request.user_id, request.session_id)
        return page.body

    async def reuse_json(
        self, query_string: bytes, *, user_id: str | None = None, session_id: str | None = None
    ) -> bytes | None:
        """The body ``search_json`` rendered for this exact raw query string, if it is still exact now;
        ``None`` means "not known": the caller takes the full path (parsing, validation, ``search_json``).

        Why: most storefront searches repeat a URL seen moments ago, and for those the framework's
        parameter parsing and validation cost more than the answer itself. Only pages that passed
        validation are ever stored, and each is re-checked against the live out-of-stock set like any
        reused page.
        """
        cache = self.cache
        if cache is None:
            return None
        cached = cache.get_url(query_string)
        if cached is None or not await self._still_exact(cached):
            return None  # the full path renders the page (and counts a stale one)
        self._count_cache("page_hit")
        self._emit(cached.performed, user_id, session_id)
        return cached.body

    async def _still_exact(self, page: CachedPage) -> bool:
        """The live out-of-stock set says the same of every item the page examined as when rendered."""
        out = await self.stock.out_of_stock(page.examined) if page.examined else set()
        return out == page.out

    def _performed(self, plan: Plan, request: SearchRequest, total: int) -> None:
        self._emit(self._event(plan, request, total), request.user_id, request.session_id)

    @staticmethod
    def _event(plan: Plan, request: SearchRequest, total: int) -> SearchPerformed:
        """The search's activity event without the shopper's ids (a cached page's reuses add theirs)."""
        anonymous = msgspec.structs.replace(request, user_id=None, session_id=None)
        return search_performed(anonymous, plan.query.text, total)

    def _emit(self, performed: SearchPerformed, user_id: str | None, session_id: str | None) -> None:
        if self.activity is None:
            return
        if user_id is not None or session_id is not None:
            performed = msgspec.structs.replace(performed, user_id=user_id, session_id=session_id)
        self.activity.emit(performed, key=user_id or session_id or "anonymous")

    async def execute(self, plan: Plan) -> SearchResponse:
        response, _, _ = await self._execute(plan)
        return response

    async def _execute(self, plan: Plan) -> tuple[SearchResponse, list[str], set[str]]:
        """The page, the SKUs whose stock state decided it, and which of those were out of stock."""
        size = plan.size
        drop_out_of_stock = plan.query.in_stock_only
        first_page = plan.query.search_after is None and plan.query.offset == 0
        # The index already filters on its (near-real-time) stock flag, so only items that stocked out
        # since its last refresh are dropped here: a small margin fills the page in one round almost
        # always; later rounds grow geometrically. One extra hit also tells whether a next page exists.
        fetch = min(size + (OVERFETCH_MARGIN if drop_out_of_stock else 1), MAX_FETCH)
        query = msgspec.structs.replace(
            plan.query, limit=fetch, with_facets=plan.query.with_facets and first_page
        )

        page: list[tuple[Hit, bool]] = []
        first_total, facets = 0, {}
        dropped = 0
        more = False
        examined: list[str] = []
        out_seen: set[str] = set()
        resume_after: tuple[float | int | str, ...] | None = None
        for round_no in range(MAX_FETCH_ROUNDS):
            try:
                result = await self._index_search(query)
            except InvalidQuery as exc:  # e.g. a forged cursor whose sort key does not fit the sort
                raise InvalidRequest(f"invalid query: {exc}") from exc
            if round_no == 0:
                first_total, facets = result.total, result.facets
            hits = result.hits
            skus = [h.document.sku for h in hits]
            examined += skus
            out = await self.stock.out_of_stock(skus) if hits else set()
            out_seen |= out
            for position, hit in enumerate(hits):
                in_stock = hit.document.sku not in out
                if not in_stock and drop_out_of_stock:
                    dropped += 1
                    continue
                page.append((hit, in_stock))
                if len(page) == size:
                    more = position < len(hits) - 1 or len(hits) == fetch
                    break
            if len(page) == size or len(hits) < fetch:
                break
            resume_after = hits[-1].sort_values
            fetch = min(max(2 * fetch, 2 * (size - len(page)) + OVERFETCH_MARGIN), MAX_FETCH)
            query = msgspec.structs.replace(
                query, search_after=resume_after, offset=0, limit=fetch, with_facets=False
            )
        else:
            more = True  # gave up filling the page: let the client continue after what was examined

        if self.metrics is not None and dropped:
            self.metrics.dropped_out_of_stock.inc(dropped)
        next_cursor = None
        if more:
            last = page[-1][0].sort_values if len(page) == size or resume_after is None else resume_after
            next_cursor = encode_cursor(plan.fingerprint, last)
        response = SearchResponse(
            hits=[self._hit(hit, in_stock, plan.zone) for hit, in_stock in page],
            total=max(first_total - dropped, len(page)),
            facets={k: [FacetCount(b.value, b.count) for b in v] for k, v in facets.items()},
            next_cursor=next_cursor,
            page=plan.page,
            size=size,
        )
        return response, examined, out_seen

    def _hit(self, hit: Hit, in_stock: bool, zone: str | None) -> SearchHit:
        doc = hit.document
        return SearchHit(
            product_id=doc.product_id,
            sku=doc.sku,
            title=doc.title,
            brand=doc.brand,
            category=">".join(doc.category_path),
            price=doc.price,
            currency=doc.currency,
            in_stock=in_stock,
            rating=doc.rating,
            score=hit.score,
            highlights=hit.highlights,
            eta_hours=self.zones.eta_hours(zone, doc.warehouses) if zone else None,
        )

    async def suggest(self, prefix: str, limit: int = MAX_SUGGESTIONS) -> SuggestResponse:
        prefix = prefix.strip()
        if len(prefix) > MAX_QUERY_LENGTH:
            raise InvalidRequest(f"q is longer than {MAX_QUERY_LENGTH} characters")
        if not 1 <= limit <= MAX_SUGGESTIONS:
            raise InvalidRequest(f"limit must be between 1 and {MAX_SUGGESTIONS}")
        if not prefix:
            return SuggestResponse([])
        return SuggestResponse((await self.index.suggest(prefix, limit))[:limit])

    async def product(
        self,
        product_id: str,
        *,
        deliver_to: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> ProductResponse | None:
        zone = deliver_to.strip().upper() if deliver_to else None
        if zone and zone not in self.zones.zones:
            raise InvalidRequest(f"unknown delivery zone {deliver_to!r}", {"zones": self.zones.zones})
        documents = await self.index.get([product_id])
        if not documents:
            return None
        doc = documents[0]
        state = await self.stock.state(doc.sku)
        in_stock = state.in_stock if state is not None else doc.in_stock
        if self.activity is not None:
            self.activity.emit(
                ProductViewed(product_id=doc.product_id, user_id=user_id, session_id=session_id),
                key=user_id or session_id or doc.product_id,
            )
        return ProductResponse(
            product_id=doc.product_id,
            supplier_id=doc.supplier_id,
            sku=doc.sku,
            title=doc.title,
            description=doc.description,
            brand=doc.brand,
            category=">".join(doc.category_path),
            category_path=list(doc.category_path),
            price=doc.price,
            currency=doc.currency,
            rating=doc.rating,
            in_stock=in_stock,
            warehouses=list(doc.warehouses),
            eta_hours=self.zones.eta_hours(zone, doc.warehouses) if zone else None,
        )
