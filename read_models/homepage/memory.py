"""In-process homepage cache (``memory://``): plain dicts in the serving process, one event loop, no locks.

Rankings are computed at build time with ``heapq.nlargest`` over the products (a build is rare: at most one
per minimum rebuild interval); a request only looks up its document.
"""

from __future__ import annotations

import asyncio
import heapq
import time
import uuid
from collections.abc import Callable, Sequence

from read_models.homepage.model import (
    ACTIVITY_HOURS,
    BUCKET_S,
    ActivityHit,
    Document,
    ProductCard,
    ProductChange,
    ProductEntry,
    RankedList,
    Rankings,
    StockFlag,
    activity_bucket,
    is_personal,
    popular_list,
    recs_list,
)
from read_models.recommendations import is_current


def _top(scores: dict[str, float], n: int) -> list[str]:
    """Highest score first; ties by id, descending (the order Redis' ZREVRANGE gives)."""
    return [pid for pid, _ in heapq.nlargest(n, scores.items(), key=lambda item: (item[1], item[0]))]


class MemoryHomepageCache:
    volatile = True

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.clear_now()

    def clear_now(self) -> None:
        self._revisions: dict[str, int] = {}
        self._products: dict[str, ProductEntry] = {}
        self._new: dict[str, float] = {}
        self._deals: dict[str, float] = {}
        self._rated: dict[str, dict[str, float]] = {}
        self._lists: dict[str, RankedList] = {}
        self._stock: dict[str, tuple[int, bool]] = {}
        self._activity: dict[tuple[str, int], dict[str, float]] = {}
        self._seen: dict[str, float] = {}  # activity event id -> when it may be forgotten
        self._documents: dict[str, Document] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        self._generation = 0
        self._regions: set[str] = set()

    # projector side ------------------------------------------------------------------------

    async def apply_products(self, changes: Sequence[ProductChange]) -> int:
        applied = 0
        for change in changes:
            pid = change.product_id
            if self._revisions.get(pid, -1) >= change.revision:
                continue
            self._revisions[pid] = change.revision
            old = self._products.pop(pid, None)
            if old is not None and old.leading_category:
                self._rated.get(old.leading_category, {}).pop(pid, None)
            entry = change.entry
            if entry is None:
                self._new.pop(pid, None)
                self._deals.pop(pid, None)
            else:
                self._products[pid] = entry
                self._new.setdefault(pid, entry.first_seen)
                if entry.discount > 0:
                    self._deals[pid] = entry.discount
                else:
                    self._deals.pop(pid, None)
                if entry.leading_category and entry.card.rating is not None:
                    self._rated.setdefault(entry.leading_category, {})[pid] = entry.card.rating
            applied += 1
        self._generation += bool(applied)
        return applied

    async def apply_lists(self, lists: Sequence[RankedList]) -> int:
        applied = shared = 0
        for ranked in lists:
            stored = self._lists.get(ranked.name)
            if ranked.region:
                self._regions.add(ranked.region)
            if stored is None or ranked.revision > stored.revision:
                self._lists[ranked.name] = ranked
                applied += 1
                shared += not is_personal(ranked.name)
        self._generation += bool(shared)  # a user's list is read per request: no document depends on it
        return applied

    async def apply_stock(self, flags: Sequence[StockFlag]) -> int:
        flipped = 0
        for flag in flags:
            stored = self._stock.get(flag.sku)
            if stored is not None and stored[0] >= flag.revision:
                continue
            was_in_stock = stored is not None and stored[1]
            self._stock[flag.sku] = (flag.revision, flag.in_stock)
            flipped += was_in_stock != flag.in_stock
        self._generation += bool(flipped)
        return flipped

    async def add_activity(self, hits: Sequence[ActivityHit], *, now: float) -> int:
        oldest = activity_bucket(now) - ACTIVITY_HOURS + 1
        self._forget(now, oldest)
        counted = 0
        for hit in hits:
            bucket = activity_bucket(hit.at)
            if bucket < oldest or hit.event_id in self._seen:
                continue
            self._seen[hit.event_id] = (bucket + ACTIVITY_HOURS) * BUCKET_S
            if hit.region:
                self._regions.add(hit.region)
            for region in dict.fromkeys((hit.region, "")):
                scores = self._activity.setdefault((region, bucket), {})
                scores[hit.product_id] = scores.get(hit.product_id, 0.0) + hit.weight
            counted += 1
        return counted  # no generation bump: activity moves every second; documents follow it by max age

    def _forget(self, now: float, oldest: int) -> None:
        for key in [key for key in self._activity if key[1] < oldest]:
            del self._activity[key]
        if self._seen and len(self._seen) > 1024:
            self._seen = {eid: until for eid, until in self._seen.items() if until > now}

    # build side -------------------------------------------------------------------------------

    async def rankings(
        self, *, region: str, depth: int, categories: int, per_category: int, lists: Sequence[str], now: float
    ) -> Rankings:
        """Ranked from a snapshot on a worker thread: sorting a large catalog takes tens of milliseconds,
        which the event loop keeps answering requests through (the copies take about a millisecond)."""
        sizes = {category: len(rated) for category, rated in self._rated.items() if rated}
        leading = [c for c, _ in heapq.nlargest(categories, sizes.items(), key=lambda i: (i[1], i[0]))]
        oldest = activity_bucket(now) - ACTIVITY_HOURS + 1
        regions = tuple(dict.fromkeys((region, "")))
        buckets = [
            (bucket_region, dict(scores))
            for (bucket_region, bucket), scores in self._activity.items()
            if bucket >= oldest and bucket_region in regions
        ]
        new, deals = dict(self._new), dict(self._deals)
        rated = {category: dict(self._rated[category]) for category in leading}
        found = {name: self._lists[name] for name in lists if name in self._lists}

        def rank() -> Rankings:
            activity: dict[str, list[str]] = {}
            for r in regions:
                total: dict[str, float] = {}
                for bucket_region, scores in buckets:
                    if bucket_region == r:
                        for pid, weight in scores.items():
                            total[pid] = total.get(pid, 0.0) + weight
                activity[r] = _top(total, depth)
            return Rankings(
                new=_top(new, depth),
                deals=_top(deals, depth),
                rated={category: _top(rated[category], per_category) for category in leading},
                lists=found,
                activity=activity,
            )

        return await asyncio.to_thread(rank)

    async def products(self, product_ids: Sequence[str]) -> dict[str, ProductEntry]:
        found = self._products
        return {pid: found[pid] for pid in product_ids if pid in found}

    async def sold_out(self, skus: Sequence[str]) -> set[str]:
        stock = self._stock
        return {sku for sku in skus if not stock.get(sku, (0, False))[1]}

    async def region_known(self, region: str) -> bool:
        return region in self._regions

    async def generation(self) -> int:
        return self._generation

    # request side ------------------------------------------------------------------------------

    async def document(self, key: str) -> tuple[Document | None, int]:
        return self._documents.get(key), self._generation

    async def put_document(self, key: str, document: Document) -> None:
        self._documents[key] = document

    async def personal(self, user_id: str, limit: int) -> list[ProductCard]:
        ranked = self._lists.get(recs_list(user_id))
        if ranked is None or not is_current(ranked, self._lists.get(popular_list(""))):
            return []
        found = self._products
        return [found[pid].card for pid in ranked.product_ids[:limit] if pid in found]

    async def acquire(self, name: str, ttl_s: float) -> str | None:
        now = self._clock()
        held = self._locks.get(name)
        if held is not None and held[1] > now:
            return None
        token = uuid.uuid4().hex
        self._locks[name] = (token, now + ttl_s)
        return token

    async def release(self, name: str, token: str) -> None:
        held = self._locks.get(name)
        if held is not None and held[0] == token:
            del self._locks[name]

    async def clear(self) -> None:
        self.clear_now()

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
