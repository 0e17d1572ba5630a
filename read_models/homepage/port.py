"""The homepage cache port: what the projector writes, what a build reads, what a request reads.

Every write is idempotent (at-least-once delivery, full replays): products, lists and stock flags are
compare-and-set by revision; an activity event counts once (its id is remembered for the activity window)
and an event older than the window counts nothing. Each write that changes a product, a shared list or a
stock flag bumps the *generation*, which tells the serving side that its documents may be rebuilt.

Adapters (``tests/contract/test_homepage_cache.py`` runs one suite against both):

* ``memory://``: in-process (``read_models.homepage.memory``), embedded; volatile, so the serving process
  replays the log into it at start;
* ``redis://HOST:PORT/DB``: Redis (``read_models.homepage.redis``), shared by every process of a cluster.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from read_models.homepage.model import (
    ActivityHit,
    Document,
    ProductCard,
    ProductChange,
    ProductEntry,
    RankedList,
    Rankings,
    StockFlag,
)

#: Which of these SKUs are sold out now (the live out-of-stock set, injected by the composition root).
SoldOut = Callable[[Sequence[str]], Awaitable[set[str]]]


class HomepageCache(Protocol):
    @property
    def volatile(self) -> bool:
        """True when the content does not outlive the process (it must be replayed from the log)."""
        ...

    # written by the projector ---------------------------------------------------------------

    async def apply_products(self, changes: Sequence[ProductChange]) -> int:
        """Apply each change newer than the stored revision of its product, in order; how many applied."""
        ...

    async def apply_lists(self, lists: Sequence[RankedList]) -> int:
        """Store each list newer than the stored revision under its name; how many applied."""
        ...

    async def apply_stock(self, flags: Sequence[StockFlag]) -> int:
        """Keep each SKU's newest in-stock flag; how many flipped (a first-seen SKU flips when in stock)."""
        ...

    async def add_activity(self, hits: Sequence[ActivityHit], *, now: float) -> int:
        """Count each hit once into its region's and every region's hour; how many counted. Activity does
        not bump the generation (it changes all the time): documents follow it by their maximum age."""
        ...

    # read by a build ------------------------------------------------------------------------

    async def rankings(
        self, *, region: str, depth: int, categories: int, per_category: int, lists: Sequence[str], now: float
    ) -> Rankings:
        """The top ``depth`` of new arrivals, deals and recent activity, the ``categories`` largest leading
        categories with their top ``per_category`` rated, and the named lists that exist."""
        ...

    async def products(self, product_ids: Sequence[str]) -> dict[str, ProductEntry]: ...

    async def sold_out(self, skus: Sequence[str]) -> set[str]:
        """Which of ``skus`` the projected stock flags say are not in stock (an unknown SKU is not). A build
        uses these, not the live set: they move with the generation, so a rebuild never sees stock events
        its own projector has not applied yet."""
        ...

    async def generation(self) -> int: ...

    async def region_known(self, region: str) -> bool:
        """Whether an analytics list or an activity event named ``region``: only those get a document of
        their own (any other region is served every region's page, so made-up regions cannot each cost a
        build and a cached document)."""
        ...

    # read by a request, and the documents -----------------------------------------------------

    async def document(self, key: str) -> tuple[Document | None, int]:
        """The stored document (or None) and the current generation, in one read."""
        ...

    async def put_document(self, key: str, document: Document) -> None: ...

    async def personal(self, user_id: str, limit: int) -> list[ProductCard]:
        """The tiles of a user's recommendations, best first (empty when none are known, or when the
        list is older than the every-region popularity list: ``read_models.recommendations.is_current``)."""
        ...

    async def acquire(self, name: str, ttl_s: float) -> str | None:
        """Take the lock ``name`` for at most ``ttl_s`` (a token), or None when someone holds it."""
        ...

    async def release(self, name: str, token: str) -> None:
        """Release the lock if ``token`` still holds it (a lock that expired and was taken stays taken)."""
        ...

    async def clear(self) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
