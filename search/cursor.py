"""The deep-paging cursor: the sort key of the last hit returned, tied to the query it belongs to.

Opaque to clients (URL-safe base64 of msgpack); the query fingerprint makes a cursor from another
query (other text, filters or sort) a client error instead of a wrong page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence

import msgspec

from search.port import SearchQuery
from search.schemas import InvalidRequest

CURSOR_VERSION = 1
SortValues = tuple[float | int | str, ...]


class Cursor(msgspec.Struct, array_like=True):
    version: int
    fingerprint: str
    sort_values: SortValues


def fingerprint(query: SearchQuery) -> str:
    """What a cursor must match: the query without its page window."""
    window_free = msgspec.structs.replace(query, limit=0, offset=0, search_after=None)
    return hashlib.blake2b(msgspec.msgpack.encode(window_free), digest_size=8).hexdigest()


def encode_cursor(fingerprint: str, sort_values: Sequence[float | int | str]) -> str:
    raw = msgspec.msgpack.encode(Cursor(CURSOR_VERSION, fingerprint, tuple(sort_values)))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, fingerprint: str) -> SortValues:
    """The sort key to continue after; 400 when the cursor is garbage or belongs to another query."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = msgspec.msgpack.decode(raw, type=Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise InvalidRequest("cursor is not valid; start again without it") from exc
    if decoded.version != CURSOR_VERSION or not decoded.sort_values:
        raise InvalidRequest("cursor is not valid; start again without it")
    if decoded.fingerprint != fingerprint:
        raise InvalidRequest("cursor belongs to a different query (q, filters and sort must not change)")
    return decoded.sort_values
