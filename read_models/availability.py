"""What the recommendation read models need to know about stock, as a port of their own.

Out-of-stock items are never recommended, and "out of stock" is the search context's real-time
out-of-stock set. read_models does not import search (contexts meet only on the log): it asks this
callable, which the composition root (``emporium/app.py``) builds over the live set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class SoldOutProducts(Protocol):
    async def __call__(self, product_ids: Sequence[str], /) -> set[str]:
        """Which of ``product_ids`` cannot be bought now (out of stock, or not in the catalog)."""
        ...


async def nothing_sold_out(product_ids: Sequence[str], /) -> set[str]:
    """For tests and tools that serve lists without a stock model: everything counts as buyable."""
    return set()


def buyable(product_ids: Sequence[str], sold_out: set[str], limit: int | None = None) -> list[str]:
    """Pure: ``product_ids`` in rank order without the sold-out ones (and repeats), cut to ``limit``."""
    kept: list[str] = []
    seen: set[str] = set()
    for product_id in product_ids:
        if product_id in sold_out or product_id in seen:
            continue
        seen.add(product_id)
        kept.append(product_id)
        if limit is not None and len(kept) >= limit:
            break
    return kept


class AvailabilityUnavailable(Exception):
    """The stock read model behind ``SoldOutProducts`` did not answer; retryable (the API answers 503)."""
