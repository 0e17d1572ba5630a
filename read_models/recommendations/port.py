"""Recommendations read model: the port every adapter implements, and its pure rules (no I/O).

Three kinds of ranked product lists, each kept whole per entity with the revision of the event that
carried it:

* per user, from ``RecommendationsComputed`` (``Recommendations``);
* per product, the products bought with it, from ``RelatedProductsComputed`` (``RelatedProducts``);
* per region (``""``: every region), the popular products that unknown users get, from
  ``PopularProductsComputed`` (``PopularProducts``).

Writes are conditional on the revision: a stale or repeated event (the log is at-least-once, a rebuild
replays everything) never replaces newer state, and a newer entry replaces the whole list, so a shorter
list leaves no leftovers.

Only the latest run's per-user lists are served (``is_current``). Every analytics run publishes the
every-region popularity list, with the run's revision (it grows with the run's input); per-user lists
only when that run's ALS beat popularity. So a user's list older than the every-region popularity list
was superseded by a run whose model lost (or that did not list the user): ``get`` does not return it,
and the user is served popularity like a new one. No new event is needed: the revision already says
which run a list came from, and events already on the log keep their meaning.

Adapters (``tests/contract/test_recommendations_store.py`` runs one suite against both):

* ``sqlite:///PATH``: embedded default (``read_models.recommendations.sqlite``);
* ``cassandra://HOST[:PORT][,HOST...]/KEYSPACE?protocol_version=3``: cluster adapter
  (``read_models.recommendations.cassandra``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from datetime import datetime
from typing import Final, Protocol, TypeVar

import msgspec

MAX_USER_ID_LENGTH: Final = 128
# Ids the analytics jobs and storefronts use: numeric ids, UUIDs, "supplier:ref"-style, e-mail-like.
USER_ID_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9._:@+-]*"
_USER_ID = re.compile(USER_ID_PATTERN)
MAX_PRODUCT_ID_LENGTH: Final = 200
USER_ID_RULE: Final = (
    f"1 to {MAX_USER_ID_LENGTH} characters: letters, digits and . _ : @ + - (starting with a letter or digit)"
)


class Recommendations(msgspec.Struct, kw_only=True, frozen=True):
    """What the store keeps per user; ``product_ids`` is in rank order (best first)."""

    user_id: str
    product_ids: tuple[str, ...]
    model: str
    revision: int
    generated_at: datetime | None = None


class RelatedProducts(msgspec.Struct, kw_only=True, frozen=True):
    """Products bought together with ``product_id``, best first."""

    product_id: str
    product_ids: tuple[str, ...]
    model: str
    revision: int
    generated_at: datetime | None = None


class PopularProducts(msgspec.Struct, kw_only=True, frozen=True):
    """The popularity ranking of one region (``""``: every region), the fallback for unknown users."""

    region: str
    product_ids: tuple[str, ...]
    model: str
    revision: int
    generated_at: datetime | None = None


RankedT = TypeVar("RankedT", Recommendations, RelatedProducts, PopularProducts)


class InvalidUserId(ValueError):
    """A user id outside ``USER_ID_RULE``; the API answers 400 with this message."""


class RecommendationsStoreError(Exception):
    """The store cannot be reached or refused the operation; retryable (the API answers 503)."""


def validate_user_id(user_id: str) -> str:
    if not 0 < len(user_id) <= MAX_USER_ID_LENGTH or _USER_ID.fullmatch(user_id) is None:
        raise InvalidUserId(f"invalid user id: {USER_ID_RULE}")
    return user_id


def is_valid_product_id(product_id: str) -> bool:
    """Product ids are supplier-scoped (``supplier:ref``); the store only needs them short and printable."""
    return (
        0 < len(product_id) <= MAX_PRODUCT_ID_LENGTH and product_id.isprintable() and product_id.strip() != ""
    )


def is_valid_user_id(user_id: str) -> bool:
    try:
        validate_user_id(user_id)
    except InvalidUserId:
        return False
    return True


def newest_by(items: Iterable[RankedT], key: Callable[[RankedT], Hashable]) -> list[RankedT]:
    """Keep only the highest revision per key (first one seen on ties): one write per entity per batch."""
    newest: dict[Hashable, RankedT] = {}
    for item in items:
        k = key(item)
        seen = newest.get(k)
        if seen is None or item.revision > seen.revision:
            newest[k] = item
    return list(newest.values())


def newest_per_user(items: Iterable[Recommendations]) -> list[Recommendations]:
    return newest_by(items, lambda r: r.user_id)


class Revisioned(Protocol):
    @property
    def revision(self) -> int: ...


def is_current(own: Revisioned, everywhere: Revisioned | None) -> bool:
    """Whether a user's list belongs to the latest run: not older than the every-region popularity list
    (region ``""``), which every run publishes. Same revision: the same run, served. (The homepage cache
    keeps both lists too, and applies the same rule.)"""
    return everywhere is None or own.revision >= everywhere.revision


class RecommendationsStore(Protocol):
    """The recommendations read model. Every write is idempotent and revision-conditional."""

    async def start(self) -> None:
        """Connect and create the schema if it is missing (idempotent)."""
        ...

    async def put_many(self, items: Sequence[Recommendations]) -> int:
        """Store each entry unless the store already holds the same or a newer revision for that user.

        Returns how many entries were written (stale and repeated ones are not counted). Raises
        ``RecommendationsStoreError`` when the store is unavailable; nothing is half-applied per user.
        """
        ...

    async def get(self, user_id: str) -> Recommendations | None:
        """The current entry of ``user_id``: None when there is none or it is superseded (``is_current``:
        older than the every-region popularity list). Its stored list stays; a newer run replaces it."""
        ...

    async def put_related(self, items: Sequence[RelatedProducts]) -> int:
        """``put_many`` for bought-together lists, per product (same revision rule and answer)."""
        ...

    async def get_related(self, product_id: str) -> RelatedProducts | None: ...

    async def put_popular(self, items: Sequence[PopularProducts]) -> int:
        """``put_many`` for popularity lists, per region (``""`` is a region like any other here)."""
        ...

    async def get_popular(self, region: str) -> PopularProducts | None: ...

    async def ping(self) -> None:
        """Raise if the store cannot answer a real request (readiness check)."""
        ...

    async def close(self) -> None: ...
