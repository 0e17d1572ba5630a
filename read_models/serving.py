"""The read side of the recommendation and trending routes, without HTTP: validate, look up, drop what
cannot be bought, fall back, cut to ``limit``.

Out-of-stock items are never recommended: every list is filtered through ``SoldOutProducts`` (the live
out-of-stock set) before it is cut, so ``limit`` counts buyable products. A user without a list of their
own, or whose whole list is sold out, gets the popularity list of their region (every region's when the
region has none), and the answer says so (``source``, ``model``). Trending products are filtered the
same way; trending queries are not products and are served as computed.
"""

from __future__ import annotations

from collections.abc import Sequence

from read_models.availability import SoldOutProducts, buyable
from read_models.recommendations import (
    MAX_PRODUCT_ID_LENGTH,
    PopularProducts,
    RecommendationsStore,
    is_valid_product_id,
    validate_user_id,
)
from read_models.regions import validate_region
from read_models.schemas import RecommendationsResponse, RelatedResponse, TrendingItem, TrendingResponse
from read_models.trending import TrendingStore, validate_list


class InvalidProductId(ValueError):
    """A product id the store could never hold; the API answers 400."""


class RecommendationsReader:
    def __init__(self, store: RecommendationsStore, sold_out: SoldOutProducts) -> None:
        self.store = store
        self.sold_out = sold_out

    async def _buyable(self, product_ids: Sequence[str], limit: int | None) -> list[str]:
        return buyable(product_ids, await self.sold_out(product_ids), limit)

    async def _popular(self, region: str) -> PopularProducts | None:
        found = await self.store.get_popular(region) if region else None
        return found or await self.store.get_popular("")

    async def for_user(
        self, user_id: str, limit: int | None = None, region: str = ""
    ) -> RecommendationsResponse:
        validate_user_id(user_id)
        validate_region(region)
        own = await self.store.get(user_id)
        if own is not None:
            product_ids = await self._buyable(own.product_ids, limit)
            if product_ids:
                return RecommendationsResponse(
                    user_id=user_id,
                    product_ids=product_ids,
                    source="personal",
                    model=own.model,
                    generated_at=own.generated_at,
                )
        popular = await self._popular(region)
        if popular is None:
            return RecommendationsResponse(user_id=user_id, product_ids=[])
        return RecommendationsResponse(
            user_id=user_id,
            product_ids=await self._buyable(popular.product_ids, limit),
            source="popular",
            model=popular.model,
            region=popular.region,
            generated_at=popular.generated_at,
        )

    async def related(self, product_id: str, limit: int | None = None) -> RelatedResponse:
        if not is_valid_product_id(product_id):
            raise InvalidProductId(f"invalid product id: 1 to {MAX_PRODUCT_ID_LENGTH} printable characters")
        found = await self.store.get_related(product_id)
        if found is None:
            return RelatedResponse(product_id=product_id, product_ids=[])
        others = [p for p in found.product_ids if p != product_id]
        return RelatedResponse(
            product_id=product_id,
            product_ids=await self._buyable(others, limit),
            model=found.model,
            generated_at=found.generated_at,
        )


class TrendingReader:
    def __init__(self, store: TrendingStore, sold_out: SoldOutProducts) -> None:
        self.store = store
        self.sold_out = sold_out

    async def get(
        self, *, window: str, kind: str, region: str = "", limit: int | None = None
    ) -> TrendingResponse:
        validate_list(kind, window, region)
        found = await self.store.get(kind, window, region) if region else None
        found = found or await self.store.get(kind, window, "")
        if found is None:
            return TrendingResponse(kind=kind, window=window, region=region, entries=[])
        entries = list(found.entries)
        if kind == "products":
            sold_out = await self.sold_out([e.key for e in entries])
            entries = [e for e in entries if e.key not in sold_out]
        return TrendingResponse(
            kind=kind,
            window=window,
            region=found.region,
            entries=[TrendingItem(key=e.key, score=e.score, count=e.count) for e in entries[:limit]],
            window_end=found.window_end,
            generated_at=found.generated_at,
        )
