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

import asyncio
import base64
import binascii
import hashlib
import math
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from decimal import Decimal
from typing import TypeVar

import msgspec
import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

from kernel.contracts.events import (
    ACTIVITY_TOPIC,
    Payload,
    ProductViewed,
    SearchPerformed,
    encode_event,
    new_event,
)
from kernel.eventlog.port import EventLog, OutgoingMessage
from kernel.tasks import cancel_and_wait
from search.delivery_zones import DeliveryZones, UnknownZone
from search.out_of_stock import OutOfStockSet
from search.port import Hit, IndexChange, InvalidQuery, SearchIndex, SearchQuery, SearchResult, Sort

log = structlog.get_logger(__name__)

MAX_QUERY_LENGTH = 200
MAX_PAGE_SIZE = 100
MAX_OFFSET = 10_000  # beyond this, page with the cursor (Elasticsearch's max_result_window)
MAX_FETCH_ROUNDS = 6
OVERFETCH_MARGIN = 5
MAX_FETCH = 4 * MAX_PAGE_SIZE
MAX_SUGGESTIONS = 10
MAX_BRANDS = 50  # brand values per search
CURSOR_VERSION = 1


_query_key = msgspec.msgpack.Encoder()
_V = TypeVar("_V")
# Same bytes as Litestar's response encoder (msgspec; Decimal as a string), so a pre-rendered page is
# byte-identical to a page rendered by the framework.
encode_json = msgspec.json.Encoder().encode


class InvalidRequest(ValueError):
    """A client error; the API answers 400 with ``detail`` and optional ``extra``."""

    def __init__(self, detail: str, extra: dict[str, object] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


# Response schemas (msgspec structs, so OpenAPI shows them exactly) ---------------------------------


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


# Requests ------------------------------------------------------------------------------------------


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


class _Cursor(msgspec.Struct, array_like=True):
    version: int
    fingerprint: str
    sort_values: tuple[float | int | str, ...]


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
    if any(not p for p in parts) or len(parts) > 8:
        raise InvalidRequest(f"category {raw!r} is not a path like 'Fashion>Men>Shirts'")
    return parts


def encode_cursor(fingerprint: str, sort_values: Sequence[float | int | str]) -> str:
    raw = msgspec.msgpack.encode(_Cursor(CURSOR_VERSION, fingerprint, tuple(sort_values)))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, fingerprint: str) -> tuple[float | int | str, ...]:
    """The sort key to continue after; 400 when the cursor is garbage or belongs to another query."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = msgspec.msgpack.decode(raw, type=_Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise InvalidRequest("cursor is not valid; start again without it") from exc
    if decoded.version != CURSOR_VERSION or not decoded.sort_values:
        raise InvalidRequest("cursor is not valid; start again without it")
    if decoded.fingerprint != fingerprint:
        raise InvalidRequest("cursor belongs to a different query (q, filters and sort must not change)")
    return decoded.sort_values


class CachedPage(msgspec.Struct, frozen=True):
    """A rendered response page and the stock facts it was decided on.

    The page is exact only while every SKU it examined (returned or dropped) has the same out-of-stock
    state as when it was computed, so a reuse re-checks exactly those SKUs against the live set.
    """

    body: bytes  # the JSON response
    total: int
    examined: tuple[str, ...]
    out: frozenset[str]
    performed: SearchPerformed  # the activity event of a reuse, without the shopper's ids
    stamp: float  # when its computation started (``ResultCache.stamp``): what it may have missed


class ResultCache:
    """Memoizes index answers (``SearchQuery`` -> ``SearchResult``) and rendered pages, never the stock
    filter.

    Storefront traffic repeats itself (the head of the query distribution, page reloads, facet clicks),
    and the index is near-real-time anyway, so an index answer can be reused until the index changes: the
    in-process projector reports every index write (``index_changed``), and ``ttl_s`` bounds the
    staleness when the index is written by other processes (``emporium project``, a rebuild). The exact
    out-of-stock filter still runs on every request, so a stock-out is hidden at once either way: a
    rendered page (``CachedPage``) is served only if the live out-of-stock set still says the same about
    every item the page examined.

    A write of new content (products, restocks) empties the cache at once. A write that only flags
    stock-outs spares what was computed before it for ``stock_out_grace_s`` more: those pages already hide
    the items (the re-check above); only their ``total`` and facet counts may still include them, as an
    index between refreshes would. Without the grace, a flash sale would empty the cache with every sale
    that empties a shelf.

    Sizes: ``max_entries`` rendered pages (~10 KiB each: the JSON and the SKUs it examined) and, by
    default, a sixteenth as many index answers (~45 KiB each: full documents). Pages answer the repeats;
    answers serve what pages cannot (a page gone stale after a stock-out, ``deliver_to`` pages, deeper
    fetch rounds), so the memory goes mostly to pages.
    """

    def __init__(
        self,
        max_entries: int = 16384,
        ttl_s: float = 1.0,
        max_answers: int | None = None,
        stock_out_grace_s: float = 1.0,
    ) -> None:
        self.max_entries = max_entries
        self.max_answers = max(64, max_entries // 16) if max_answers is None else max_answers
        self.ttl_s = ttl_s
        self.stock_out_grace_s = stock_out_grace_s
        # Entries hold (stamp, expires, value); a stamp is the monotonic time its computation started.
        self._entries: OrderedDict[bytes, tuple[float, float, SearchResult]] = OrderedDict()
        self._pages: OrderedDict[bytes, tuple[float, float, CachedPage]] = OrderedDict()
        self._urls: OrderedDict[bytes, tuple[float, float, CachedPage]] = OrderedDict()
        self._stock_outs: deque[float] = deque()  # when stock-out writes were reported, oldest first
        self._computed_after = -math.inf  # what was computed before this is out of date

    @staticmethod
    def stamp() -> float:
        """Take before computing what will be cached: the ``put`` then knows what it may have missed."""
        return time.monotonic()

    def index_changed(self, change: IndexChange) -> None:
        if change is IndexChange.STOCK_OUTS:
            self._stock_outs.append(time.monotonic())
        else:
            self.invalidate()

    def invalidate(self) -> None:
        self._computed_after = time.monotonic()
        self._stock_outs.clear()
        self._entries.clear()
        self._pages.clear()
        self._urls.clear()

    def get(self, key: bytes) -> SearchResult | None:
        return self._get(self._entries, key)

    def put(self, key: bytes, stamp: float, result: SearchResult) -> None:
        self._put(self._entries, key, stamp, result, self.max_answers)

    def get_page(self, key: bytes) -> CachedPage | None:
        return self._get(self._pages, key)

    def put_page(self, key: bytes, page: CachedPage) -> None:
        self._put(self._pages, key, page.stamp, page, self.max_entries)

    def get_url(self, query_string: bytes) -> CachedPage | None:
        """The page last rendered for exactly this raw query string (``SearchService.reuse_json``)."""
        return self._get(self._urls, query_string)

    def put_url(self, query_string: bytes, page: CachedPage) -> None:
        """Under the page's own stamp: a page reused under another URL is as old as when computed."""
        self._put(self._urls, query_string, page.stamp, page, self.max_entries)

    def _current(self, stamp: float, now: float) -> bool:
        """Whether what was computed at ``stamp`` still stands: no content change since, and no
        stock-out since whose grace is over."""
        outs, grace = self._stock_outs, self.stock_out_grace_s
        while outs and outs[0] + grace <= now:
            self._computed_after = outs.popleft()
        return stamp > self._computed_after

    def _get(self, entries: OrderedDict[bytes, tuple[float, float, _V]], key: bytes) -> _V | None:
        entry = entries.get(key)
        if entry is None:
            return None
        stamp, expires, value = entry
        now = time.monotonic()
        if now > expires or not self._current(stamp, now):
            del entries[key]
            return None
        entries.move_to_end(key)
        return value

    def _put(
        self,
        entries: OrderedDict[bytes, tuple[float, float, _V]],
        key: bytes,
        stamp: float,
        value: _V,
        limit: int,
    ) -> None:
        now = time.monotonic()
        if not self._current(stamp, now):  # the index changed while this was computed
            return
        entries[key] = (stamp, now + self.ttl_s, value)
        entries.move_to_end(key)
        while len(entries) > limit:
            entries.popitem(last=False)


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
        fingerprint = hashlib.blake2b(
            msgspec.msgpack.encode(msgspec.structs.replace(query, limit=0, offset=0)), digest_size=8
        ).hexdigest()
        if request.cursor is not None:
            query = msgspec.structs.replace(
                query, search_after=decode_cursor(request.cursor, fingerprint), offset=0
            )
        return Plan(
            query=query, size=request.size, page=request.page, fingerprint=fingerprint, zone=zone or None
        )

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
        return SearchPerformed(query=plan.query.text, filters=_filters(request), total=total)

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


def _filters(request: SearchRequest) -> dict[str, str]:
    filters: dict[str, str] = {"sort": request.sort.value, "in_stock": str(request.in_stock).lower()}
    if request.category:
        filters["category"] = request.category
    if request.brand:
        filters["brand"] = ",".join(request.brand)
    if request.price_min is not None:
        filters["price_min"] = str(request.price_min)
    if request.price_max is not None:
        filters["price_max"] = str(request.price_max)
    if request.rating_min is not None:
        filters["rating_min"] = str(request.rating_min)
    if request.deliver_to:
        filters["deliver_to"] = request.deliver_to
    return filters


# Activity events -----------------------------------------------------------------------------------


class SearchMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.dropped_out_of_stock = Counter(
            "emporium_search_out_of_stock_dropped_total",
            "Hits dropped because the out-of-stock set knew them gone before the index did",
            registry=registry,
        )
        self.cache = Counter(
            "emporium_search_cache_total",
            "Index answers served from the result cache",
            ["result"],
            registry=registry,
        )
        self.activity_published = Counter(
            "emporium_activity_events_published_total",
            "Storefront activity events published",
            registry=registry,
        )
        self.activity_dropped = Counter(
            "emporium_activity_events_dropped_total",
            "Activity events dropped because the publish queue was full or the log refused them",
            ["reason"],
            registry=registry,
        )
        self.activity_batch_seconds = Histogram(
            "emporium_activity_publish_seconds",
            "Time to publish one batch of activity events",
            registry=registry,
        )


class ActivityPublisher:
    """Fire-and-forget activity events: searches never wait for the log.

    ``emit`` only enqueues (O(1), never blocks); one background task publishes in batches. When the queue
    is full (the log is slow or down) events are dropped and counted: analytics tolerate a gap, shoppers
    do not tolerate a slow search.
    """

    def __init__(
        self,
        event_log: EventLog,
        *,
        metrics: SearchMetrics,
        producer: str = "search",
        max_queue: int = 10_000,
        max_batch: int = 500,
    ) -> None:
        self.event_log = event_log
        self.metrics = metrics
        self.producer = producer
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Payload, str]] = asyncio.Queue(max_queue)
        self._queue_full = metrics.activity_dropped.labels("queue_full")
        self._task: asyncio.Task[None] | None = None

    def emit(self, payload: Payload, *, key: str) -> None:
        """Enqueue only: the envelope (id, timestamp) is built and encoded by the publishing task, off
        the request path (``occurred_at`` lags the search by at most the batch linger, ~10 ms)."""
        try:
            self._queue.put_nowait((payload, key))
        except asyncio.QueueFull:
            self._queue_full.inc()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="activity-publisher")

    async def stop(self, flush_timeout_s: float = 5.0) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        await cancel_and_wait([task])
        try:
            await asyncio.wait_for(self.flush(), flush_timeout_s)
        except (TimeoutError, Exception) as exc:
            log.warning("activity events lost at shutdown", pending=self._queue.qsize(), error=repr(exc))

    async def flush(self) -> None:
        while not self._queue.empty():
            await self._publish(self._drain())

    def _drain(self) -> list[OutgoingMessage]:
        batch: list[OutgoingMessage] = []
        while len(batch) < self.max_batch:
            try:
                payload, key = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            batch.append(self._message(payload, key))
        return batch

    def _message(self, payload: Payload, key: str) -> OutgoingMessage:
        event = new_event(payload, key=key, revision=1, producer=self.producer)
        return OutgoingMessage(key, encode_event(event))

    async def _run(self) -> None:
        while True:
            payload, key = await self._queue.get()
            await asyncio.sleep(0.01)  # let a burst accumulate into one publish
            batch = [self._message(payload, key), *self._drain()]
            try:
                await self._publish(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.metrics.activity_dropped.labels("publish_failed").inc(len(batch))
                log.warning("activity publish failed; batch dropped", count=len(batch), error=repr(exc))
                await asyncio.sleep(1.0)

    async def _publish(self, batch: list[OutgoingMessage]) -> None:
        if not batch:
            return
        with self.metrics.activity_batch_seconds.time():
            await self.event_log.publish(ACTIVITY_TOPIC, batch)
        self.metrics.activity_published.inc(len(batch))
