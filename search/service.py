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

Why a page can be reused (``ResultCache``): its key is the whole index query (text, filters, sort, page
window), so a reuse is the page the index would give now (``ResultCache.index_changed``; up to a
stock-out's grace, its ``total`` and facets may still count the item), and it is reused only while the
live out-of-stock set says the same of every item it examined, so it is also the page the stock filter
would give now. Pages with ``deliver_to`` are not reused: their ETAs follow the delivery-zone model,
which changes independently of the index.
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple

import msgspec

from kernel.contracts.events import ProductViewed
from search.activity import ActivityPublisher, region_of, search_performed
from search.cache import CachedPage, ResultCache
from search.cursor import SortValues, decode_cursor, encode_cursor, fingerprint
from search.delivery_zones import DeliveryZones, UnknownZone
from search.metrics import SearchMetrics
from search.out_of_stock import OutOfStockSet
from search.port import FacetBucket, Hit, InvalidQuery, SearchIndex, SearchQuery, SearchResult
from search.schemas import (
    DID_YOU_MEAN_BELOW,
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

MAX_FETCH_ROUNDS = 6
OVERFETCH_MARGIN = 5
MAX_FETCH = 4 * MAX_PAGE_SIZE
MAX_CATEGORY_PARTS = 8

_query_key = msgspec.msgpack.Encoder()


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


def _check(request: SearchRequest) -> None:
    """Reject combinations the parameter types cannot express."""
    if len(request.q.strip()) > MAX_QUERY_LENGTH:
        raise InvalidRequest(f"q is longer than {MAX_QUERY_LENGTH} characters")
    if not 1 <= request.size <= MAX_PAGE_SIZE:
        raise InvalidRequest(f"size must be between 1 and {MAX_PAGE_SIZE}")
    if request.page < 1:
        raise InvalidRequest("page must be 1 or more")
    if request.cursor is None and request.page * request.size > MAX_OFFSET:
        raise InvalidRequest(f"page * size may not exceed {MAX_OFFSET}; use next_cursor for deep paging")
    for name, value in (("price_min", request.price_min), ("price_max", request.price_max)):
        if value is not None and (not value.is_finite() or value < 0):
            raise InvalidRequest(f"{name} must be a number >= 0")
    if request.price_min is not None and request.price_max is not None:
        if request.price_min > request.price_max:
            raise InvalidRequest("price_min must not be greater than price_max")
    if request.rating_min is not None and not (0 <= request.rating_min <= 5):
        raise InvalidRequest("rating_min must be between 0 and 5")


class _Shown(NamedTuple):
    hit: Hit
    in_stock: bool  # per the out-of-stock set, not the index flag


class _Filled:
    """A page being filled from rounds of index hits, and the stock facts that decided it."""

    def __init__(self, size: int, drop_out_of_stock: bool) -> None:
        self.size = size
        self.drop_out_of_stock = drop_out_of_stock
        self.shown: list[_Shown] = []
        self.total = 0  # of the first round
        self.facets: dict[str, list[FacetBucket]] = {}
        self.dropped = 0
        self.examined: list[str] = []  # every SKU looked at, shown or dropped
        self.out: set[str] = set()  # those of them out of stock
        self.more = False  # a next page exists
        self.resume_after: SortValues | None = None  # the last hit looked at, when a round continued

    @property
    def full(self) -> bool:
        return len(self.shown) == self.size

    def take(self, hits: list[Hit], out: set[str], fetched: int) -> None:
        """Add a round's hits (``out``: which of them are out of stock) until the page is full."""
        self.examined += [hit.document.sku for hit in hits]
        self.out |= out
        for position, hit in enumerate(hits):
            in_stock = hit.document.sku not in out
            if not in_stock and self.drop_out_of_stock:
                self.dropped += 1
                continue
            self.shown.append(_Shown(hit, in_stock))
            if self.full:
                self.more = position < len(hits) - 1 or len(hits) == fetched
                return

    def last_sort_values(self) -> SortValues:
        """Where the next page starts: after the last hit shown, or after the last one looked at."""
        if self.full or self.resume_after is None:
            return self.shown[-1].hit.sort_values
        return self.resume_after


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
        self._searching: dict[bytes, asyncio.Task[SearchResult]] = {}  # misses in flight, by query

    def plan(self, request: SearchRequest) -> Plan:
        """The index query of a request, validated; its cursor decoded."""
        _check(request)
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
            text=request.q.strip(),
            category=parse_category(request.category),
            brands=brands,
            price_min=request.price_min,
            price_max=request.price_max,
            rating_min=request.rating_min,
            in_stock_only=request.in_stock,
            warehouses=warehouses,
            sort=request.sort,
            limit=request.size,
            offset=(request.page - 1) * request.size,
        )
        key = fingerprint(query)
        if request.cursor is not None:
            query = msgspec.structs.replace(query, search_after=decode_cursor(request.cursor, key), offset=0)
        return Plan(query=query, size=request.size, page=request.page, fingerprint=key, zone=zone or None)

    async def search(self, request: SearchRequest) -> SearchResponse:
        """One page of ``GET /v1/search``: reused from the cache while still exact, else computed."""
        plan = self.plan(request)
        response = await self._page(plan)
        if response.total < DID_YOU_MEAN_BELOW and plan.query.text and request.cursor is None:
            response = await self._did_you_mean(request, response)
        if self.activity is not None:
            performed = search_performed(request, plan.query.text, response.total)
            self.activity.emit(performed, key=request.user_id or request.session_id or "anonymous")
        return response

    async def _did_you_mean(self, request: SearchRequest, response: SearchResponse) -> SearchResponse:
        """The response with the corrected query and its first page, when that finds more products."""
        corrected = await self.index.correct(request.q)
        if corrected is None or corrected == request.q.strip().lower():
            return response
        better = await self._page(self.plan(msgspec.structs.replace(request, q=corrected, page=1)))
        if better.total <= response.total:
            return response
        return msgspec.structs.replace(
            response, corrected_query=corrected, corrected_hits=better.hits, corrected_total=better.total
        )

    async def _page(self, plan: Plan) -> SearchResponse:
        cache = self.cache
        if cache is None or plan.zone is not None:
            return self._response(plan, await self._fill(plan))
        key = _query_key.encode(plan.query)
        stamp = cache.stamp()
        cached = cache.get_page(key)
        if cached is not None and await self._still_exact(cached):
            self._count_cache("page_hit")
            return cached.response
        self._count_cache("page_miss" if cached is None else "page_stale")
        filled = await self._fill(plan)
        response = self._response(plan, filled)
        cache.put_page(key, CachedPage(response, tuple(filled.examined), frozenset(filled.out), stamp))
        return response

    async def _still_exact(self, page: CachedPage) -> bool:
        """The live out-of-stock set says the same of every item the page examined as when computed."""
        out = await self.stock.out_of_stock(page.examined) if page.examined else set()
        return out == page.out

    def _count_cache(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.cache.labels(result).inc()

    async def _index_search(self, query: SearchQuery) -> SearchResult:
        cache = self.cache
        try:
            if cache is None:
                return await self.index.search(query)
            key = _query_key.encode(query)
            result = cache.get(key)
            self._count_cache("hit" if result is not None else "miss")
            if result is None:
                result = await self._search_once(key, query, cache)
            return result
        except InvalidQuery as exc:  # e.g. a forged cursor whose sort key does not fit the sort
            raise InvalidRequest(f"invalid query: {exc}") from exc

    async def _search_once(self, key: bytes, query: SearchQuery, cache: ResultCache) -> SearchResult:
        """Concurrent misses of one query share one index search: when a popular query's entry expires
        (every ``ttl_s`` where other processes write the index), its waiting requests would otherwise all
        search the index at once. A caller that gives up does not cancel the others' search."""
        task = self._searching.get(key)
        if task is None:

            async def search_and_keep() -> SearchResult:
                stamp = cache.stamp()
                result = await self.index.search(query)
                cache.put(key, stamp, result)
                return result

            task = asyncio.ensure_future(search_and_keep())
            self._searching[key] = task
            task.add_done_callback(lambda done: self._search_done(key, done))
        return await asyncio.shield(task)

    def _search_done(self, key: bytes, task: asyncio.Task[SearchResult]) -> None:
        self._searching.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here too: every waiter may have given up

    async def _fill(self, plan: Plan) -> _Filled:
        """The page's hits, in rounds of index searches, each checked against the out-of-stock set."""
        filled = _Filled(plan.size, drop_out_of_stock=plan.query.in_stock_only)
        first_page = plan.query.search_after is None and plan.query.offset == 0
        # The index already filters on its (near-real-time) stock flag, so only items that stocked out
        # since its last refresh are dropped here: a small margin fills the page in one round almost
        # always; later rounds grow geometrically. One extra hit also tells whether a next page exists.
        fetch = min(plan.size + (OVERFETCH_MARGIN if filled.drop_out_of_stock else 1), MAX_FETCH)
        with_facets = plan.query.with_facets and first_page
        query = msgspec.structs.replace(plan.query, limit=fetch, with_facets=with_facets)
        for round_no in range(MAX_FETCH_ROUNDS):
            result = await self._index_search(query)
            if round_no == 0:
                filled.total, filled.facets = result.total, result.facets
            skus = [hit.document.sku for hit in result.hits]
            filled.take(result.hits, await self.stock.out_of_stock(skus) if skus else set(), fetch)
            if filled.full or len(result.hits) < fetch:
                return filled
            filled.resume_after = result.hits[-1].sort_values
            fetch = min(max(2 * fetch, 2 * (plan.size - len(filled.shown)) + OVERFETCH_MARGIN), MAX_FETCH)
            query = msgspec.structs.replace(
                query, search_after=filled.resume_after, offset=0, limit=fetch, with_facets=False
            )
        filled.more = True  # gave up filling the page: let the client continue after what was examined
        return filled

    def _response(self, plan: Plan, filled: _Filled) -> SearchResponse:
        if self.metrics is not None and filled.dropped:
            self.metrics.dropped_out_of_stock.inc(filled.dropped)
        next_cursor = encode_cursor(plan.fingerprint, filled.last_sort_values()) if filled.more else None
        return SearchResponse(
            hits=[self._hit(shown.hit, shown.in_stock, plan.zone) for shown in filled.shown],
            total=max(filled.total - filled.dropped, len(filled.shown)),
            facets={
                name: [FacetCount(b.value, b.count) for b in buckets]
                for name, buckets in filled.facets.items()
            },
            next_cursor=next_cursor,
            page=plan.page,
            size=plan.size,
        )

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
        region: str | None = None,
    ) -> ProductResponse | None:
        zone = deliver_to.strip().upper() if deliver_to else None
        if zone and zone not in self.zones.zones:
            raise InvalidRequest(f"unknown delivery zone {deliver_to!r}", {"zones": self.zones.zones})
        documents = await self.index.get([product_id])
        if not documents:
            return None
        doc = documents[0]
        state = await self.stock.state(doc.sku)
        in_stock = state is not None and state.in_stock  # no stock record: out of stock
        if self.activity is not None:
            viewed = ProductViewed(
                product_id=doc.product_id,
                user_id=user_id,
                session_id=session_id,
                region=region_of(region, zone),
                category=">".join(doc.category_path),
                brand=doc.brand,
            )
            self.activity.emit(viewed, key=user_id or session_id or doc.product_id)
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
