"""What a feed reader yields, and what can be wrong with a feed: one record (``LineError``: reported,
the rest goes on) or the whole body (``FeedError`` and its kinds: refused with a 4xx before anything
is published, or, for a body found too large once decompressed, the import stops where it is)."""

from __future__ import annotations

from typing import Any

import msgspec


class LineError(msgspec.Struct, frozen=True):
    """A rejected record: where it starts in the feed and why it was rejected."""

    line: int
    reason: str


class FeedError(Exception):
    """The feed as a whole is unusable; nothing of it was imported."""

    status_code = 422

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnsupportedFeedFormat(FeedError):
    status_code = 415


class EmptyFeed(FeedError):
    status_code = 400


class FeedTooLarge(FeedError):
    status_code = 413


class ReadStopped(Exception):
    """Reading was stopped from outside (the client went away, the import lease was lost)."""


Row = dict[str, Any]
ParsedRecord = tuple[int, Row] | LineError
