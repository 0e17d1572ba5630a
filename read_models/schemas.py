"""The wire shapes of the recommendation and trending routes (msgspec structs: the OpenAPI schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

Source = Literal["personal", "popular"]


class RecommendationsResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``source`` says which list this is: ``personal`` (computed for this user) or ``popular`` (the
    popularity fallback of ``region``, for users with no list yet); absent with an empty list when
    neither exists. ``model`` names what produced it (e.g. ``als``, ``popularity``)."""

    user_id: str
    product_ids: list[str]
    source: Source | None = None
    model: str | None = None
    region: str | None = None  # the popularity list served ("" = every region); only with source popular
    generated_at: datetime | None = None


class RelatedResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Products bought together with ``product_id``, best first; empty (no ``model``) when none."""

    product_id: str
    product_ids: list[str]
    model: str | None = None
    generated_at: datetime | None = None


class TrendingItem(msgspec.Struct, kw_only=True):
    key: str  # the query text (kind queries) or the product id (kind products)
    score: float  # time-decayed weight: the ranking
    count: int  # events behind it in the window


class TrendingResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One trending list. ``region`` is the list served: the asked region's, or every region's (``""``)
    when that region has none; ``entries`` is empty (and the times absent) when no run has produced it."""

    kind: str
    window: str
    region: str
    entries: list[TrendingItem]
    window_end: datetime | None = None
    generated_at: datetime | None = None
