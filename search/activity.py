"""Storefront activity events of search (searches performed, products viewed); the fire-and-forget publisher
they go through is the kernel's (``kernel.activity``), shared with inventory's purchases."""

from __future__ import annotations

from kernel.activity import ActivityPublisher
from kernel.contracts.events import SearchPerformed
from search.schemas import SearchRequest

__all__ = ["ActivityPublisher", "region_of", "search_performed"]


def region_of(header: str | None, deliver_to: str | None) -> str | None:
    """The shopper's delivery region: the ``X-Region`` header, else the ``deliver_to`` zone (upper case)."""
    for value in (header, deliver_to):
        if value and value.strip():
            return value.strip().upper()[:64]
    return None


def search_performed(request: SearchRequest, text: str, total: int) -> SearchPerformed:
    """The activity event of a search (``text``: the query as searched, trimmed)."""
    return SearchPerformed(
        query=text,
        filters=_filters(request),
        total=total,
        user_id=request.user_id,
        session_id=request.session_id,
        region=region_of(request.region, request.deliver_to),
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
