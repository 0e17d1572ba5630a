"""The homepage request path: the cached document, the live stock filter, the shopper's recommendations.

A request reads the cache and the out-of-stock set, nothing else. Building a document (reading the
ingredients, composing the sections) happens under a lock, so one worker across all processes builds
while every other request keeps serving the previous copy (serve-stale-while-revalidate; Magento's
mutex waits exhausted its worker pools, architecture #369). Only a page that was never built waits,
and in-process it waits on the one build in flight (single flight), never on a lock of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from read_models.homepage.model import (
    ALL_REGIONS,
    LAYOUTS,
    Document,
    Platform,
    compose,
    document_key,
    is_stale,
    popular_list,
    render,
    trending_choice,
    wanted_ids,
)
from read_models.homepage.port import HomepageCache, SoldOut

log = structlog.get_logger(__name__)

REGION_MEMO_S = 5.0  # a region named for the first time gets its own page within this
MAX_REGION_MEMO = 10_000


class HomepageUnavailable(Exception):
    """No page was ever built and none could be built in time; retryable (503)."""


@dataclass(frozen=True)
class Page:
    body: bytes
    etag: str
    personalised: bool


@dataclass(frozen=True)
class Freshness:
    max_age_s: float = 60.0  # a document older than this is rebuilt even if nothing changed
    min_rebuild_s: float = 2.0  # ... and never rebuilt more often than this when its ingredients change
    lock_ttl_s: float = 10.0  # a crashed builder's lock expires after this
    first_build_wait_s: float = 5.0  # how long a request waits for a page that was never built


class HomepageService:
    def __init__(
        self,
        cache: HomepageCache,
        sold_out: SoldOut,
        *,
        freshness: Freshness | None = None,
        clock: Callable[[], float] = time.time,
        on_build: Callable[[float], None] | None = None,
    ) -> None:
        self.cache = cache
        self.sold_out = sold_out
        self.freshness = freshness or Freshness()
        self.clock = clock
        self.on_build = on_build  # seconds a build took (metrics)
        self.builds = 0  # documents this process built (the stampede test counts them)
        self._inflight: dict[str, asyncio.Task[Document | None]] = {}
        self._not_before: dict[str, float] = {}  # no lock attempt before this (another worker builds)
        self._regions: dict[str, tuple[bool, float]] = {}  # region -> (known, until): a short memo

    # request path --------------------------------------------------------------------------------

    async def page(self, region: str, platform: Platform, user_id: str | None = None) -> Page:
        if region and not await self._known(region):
            region = ALL_REGIONS  # the answer's "region" says which page this is
        key = document_key(region, platform)
        document, generation = await self.cache.document(key)
        now = self.clock()
        if document is None:
            document = await self._first_build(key, region, platform)
        elif self._due(key, document, generation, now):
            self._revalidate(key, region, platform)
        personal = await self.cache.personal(user_id, LAYOUTS[platform].spare) if user_id else []
        if personal:
            out = await self.sold_out(document.skus + [card.sku for card in personal])
        else:
            out = await self.sold_out(document.shown)  # the common case: nothing shown is sold out
            if not out:
                return Page(document.body, document.etag, False)
            out = await self.sold_out(document.skus)  # spares take the sold-out items' places
        body, etag = render(document, sold_out=out, personal=personal)
        return Page(body, etag, bool(personal))

    async def _known(self, region: str) -> bool:
        """Whether ``region`` gets its own page (asked of the cache at most every few seconds per region)."""
        now = self.clock()
        memo = self._regions.get(region)
        if memo is not None and memo[1] > now:
            return memo[0]
        known = await self.cache.region_known(region)
        if len(self._regions) >= MAX_REGION_MEMO:
            self._regions.clear()
        self._regions[region] = (known, now + REGION_MEMO_S)
        return known

    def _due(self, key: str, document: Document, generation: int, now: float) -> bool:
        f = self.freshness
        if not is_stale(document, generation, now, max_age_s=f.max_age_s, min_rebuild_s=f.min_rebuild_s):
            return False
        return key not in self._inflight and now >= self._not_before.get(key, 0.0)

    def _revalidate(self, key: str, region: str, platform: Platform) -> None:
        """Rebuild in the background; this request and the others serve the stale copy meanwhile."""
        self._start_build(key, region, platform)

    def _start_build(self, key: str, region: str, platform: Platform) -> asyncio.Task[Document | None]:
        self._inflight[key] = task = asyncio.create_task(self._build_locked(key, region, platform))
        task.add_done_callback(lambda done: self._built(key, done))
        return task

    def _built(self, key: str, task: asyncio.Task[Document | None]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here: a failed build was logged by _build_locked

    async def _first_build(self, key: str, region: str, platform: Platform) -> Document:
        """Every request of this process waits on one build; other processes' builds are polled for."""
        deadline = self.clock() + self.freshness.first_build_wait_s
        while True:
            task = self._inflight.get(key) or self._start_build(key, region, platform)
            try:
                built = await asyncio.shield(task)
            except Exception as exc:
                raise HomepageUnavailable("the homepage cannot be built now; retry shortly") from exc
            if built is None:  # another process holds the lock: its document appears shortly
                built = (await self.cache.document(key))[0]
            if built is not None:
                return built
            if self.clock() >= deadline:
                raise HomepageUnavailable("the homepage is being built; retry shortly")
            await asyncio.sleep(0.02)

    # building ----------------------------------------------------------------------------------------

    async def _build_locked(self, key: str, region: str, platform: Platform) -> Document | None:
        """Build under the cross-process lock; None when another worker holds it."""
        f = self.freshness
        token = await self.cache.acquire(key, f.lock_ttl_s)
        if token is None:
            self._not_before[key] = self.clock() + f.min_rebuild_s
            return None
        try:
            current, generation = await self.cache.document(key)
            now = self.clock()
            if current is not None and not is_stale(
                current, generation, now, max_age_s=f.max_age_s, min_rebuild_s=f.min_rebuild_s
            ):
                return current  # another worker built it while this one waited for the lock
            document = await self.build(region, platform, generation)
            await self.cache.put_document(key, document)
            return document
        except Exception:
            self._not_before[key] = self.clock() + f.min_rebuild_s
            log.exception("homepage build failed", region=region, platform=platform.value)
            raise
        finally:
            await self.cache.release(key, token)

    async def build(self, region: str, platform: Platform, generation: int) -> Document:
        """Compose one document from the cached ingredients, skipping what the projected stock flags say is
        sold out (requests still filter with the live set, which may be a moment ahead)."""
        started = time.perf_counter()
        layout = LAYOUTS[platform]
        now = self.clock()
        depth = layout.spare * 3  # deep enough that sell-outs at build time still leave spares
        rankings = await self.cache.rankings(
            region=region,
            depth=depth,
            categories=layout.categories,
            per_category=4 * layout.per_category,
            lists=trending_choice(region) + tuple(dict.fromkeys((popular_list(region), popular_list("")))),
            now=now,
        )
        products = await self.cache.products(sorted(wanted_ids(rankings, region, now)))
        out = await self.cache.sold_out([entry.card.sku for entry in products.values()])
        self.builds += 1
        document = compose(
            rankings, products, out, region=region, platform=platform, generation=generation, now=now
        )
        if self.on_build is not None:
            self.on_build(time.perf_counter() - started)
        return document

    async def stop(self) -> None:
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
