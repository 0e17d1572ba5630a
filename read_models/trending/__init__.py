"""Trending read model: the port and its rules (adapters in ``memory`` and ``redis``)."""

from __future__ import annotations

from read_models.trending.port import (
    KINDS,
    WINDOWS,
    InvalidTrendingRequest,
    Kind,
    Trending,
    TrendingStore,
    TrendingStoreError,
    Window,
    list_key,
    newest_per_list,
    validate_list,
)

__all__ = [
    "KINDS",
    "WINDOWS",
    "InvalidTrendingRequest",
    "Kind",
    "Trending",
    "TrendingStore",
    "TrendingStoreError",
    "Window",
    "list_key",
    "newest_per_list",
    "validate_list",
]
