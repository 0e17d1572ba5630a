"""Storefront activity events of search (searches performed); the fire-and-forget publisher is the
kernel's (``kernel.eventlog.activity``, re-exported here)."""

from __future__ import annotations

from kernel.contracts.events import SearchPerformed
from kernel.eventlog.activity import ActivityPublisher
from search.schemas import SearchRequest

__all__ = ["ActivityPublisher", "search_performed"]


def search_performed(request: SearchRequest, text: str, total: int) -> SearchPerformed:
    """The activity event of a search (``text``: the query as searched, trimmed)."""
    return SearchPerformed(
        query=text,
        filters=_filters(request),
        total=total,
        user_id=request.user_id,
        session_id=request.session_id,
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
