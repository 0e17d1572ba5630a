"""Recommendations read model: the port and its rules (adapters in ``sqlite`` and ``cassandra``)."""

from __future__ import annotations

from read_models.recommendations.port import (
    MAX_PRODUCT_ID_LENGTH,
    MAX_USER_ID_LENGTH,
    USER_ID_PATTERN,
    USER_ID_RULE,
    InvalidUserId,
    PopularProducts,
    Recommendations,
    RecommendationsStore,
    RecommendationsStoreError,
    RelatedProducts,
    is_current,
    is_valid_product_id,
    is_valid_user_id,
    newest_by,
    newest_per_user,
    validate_user_id,
)

__all__ = [
    "MAX_PRODUCT_ID_LENGTH",
    "MAX_USER_ID_LENGTH",
    "USER_ID_PATTERN",
    "USER_ID_RULE",
    "InvalidUserId",
    "PopularProducts",
    "Recommendations",
    "RecommendationsStore",
    "RecommendationsStoreError",
    "RelatedProducts",
    "is_current",
    "is_valid_product_id",
    "is_valid_user_id",
    "newest_by",
    "newest_per_user",
    "validate_user_id",
]
