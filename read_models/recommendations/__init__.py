"""Recommendations read model: port, adapters and the URL factory (see ``port`` for the rules)."""

from __future__ import annotations

from read_models.recommendations.port import (
    MAX_USER_ID_LENGTH,
    USER_ID_PATTERN,
    USER_ID_RULE,
    InvalidUserId,
    Recommendations,
    RecommendationsStore,
    RecommendationsStoreError,
    is_valid_user_id,
    newest_per_user,
    validate_user_id,
)


def open_recommendations_store(url: str) -> RecommendationsStore:
    """``sqlite:///PATH`` (embedded) or ``cassandra://HOST:PORT/KEYSPACE?...``; call ``start()`` next."""
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sqlite":
        from kernel.database import SqliteTarget, parse_database_url
        from read_models.recommendations.sqlite import SqliteRecommendationsStore

        target = parse_database_url(url)
        assert isinstance(target, SqliteTarget)
        return SqliteRecommendationsStore(target.path)
    if scheme == "cassandra":
        from read_models.recommendations.cassandra import CassandraRecommendationsStore

        return CassandraRecommendationsStore(url)
    raise ValueError(
        f"unsupported recommendations URL {url!r}: use sqlite:///PATH or cassandra://HOST/KEYSPACE"
    )


__all__ = [
    "MAX_USER_ID_LENGTH",
    "USER_ID_PATTERN",
    "USER_ID_RULE",
    "InvalidUserId",
    "Recommendations",
    "RecommendationsStore",
    "RecommendationsStoreError",
    "is_valid_user_id",
    "newest_per_user",
    "open_recommendations_store",
    "validate_user_id",
]
