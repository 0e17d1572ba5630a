"""JSON a client cannot hurt the server with: a nesting limit, no repeated keys, and only as JSON.

msgspec and the stdlib both accept a key given twice (the last one silently wins, so a proxy or a
log that reads the first one sees another request than the server does), and both recurse once per
nesting level, so a body of a thousand brackets ends in ``RecursionError`` (a 500) instead of a 400.
``check_json`` finds both on a body that has already been decoded, cheaply enough for the
reservation hot path and for every line of a feed:

- nesting is read from the decoded value, descending at most ``max_depth`` levels;
- keys are counted from colons: outside strings every ``:`` ends a key, so the body and the decoded
  value re-encoded (in C) have as many colons unless a repeated key was dropped. Only a body that
  hides a colon as ``\\u003a``, or one that does repeat a key, is tokenized to name the key.

No web framework here: the feed parser uses it too. The HTTP routes use it through
``kernel.http.json_body``.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

MAX_DEPTH = 32
JSON_MEDIA_TYPE = "application/json"

_STRING = rb'"[^"\\]*(?:\\.[^"\\]*)*"'
# A key (a string followed by ':'), any other string (skipped whole), an opening or a closing bracket.
_TOKEN = re.compile(rb"(" + _STRING + rb")\s*:|" + _STRING + rb"|([\[{])|[\]}]")
_ANY = msgspec.json.Decoder()
_encode = msgspec.json.Encoder().encode


class JsonShapeError(ValueError):
    """Valid JSON that is refused: nested too deep, or a key given twice in one object."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def too_deep(max_depth: int = MAX_DEPTH) -> JsonShapeError:
    return JsonShapeError(f"JSON nested deeper than {max_depth} levels")


def decode_json(raw: bytes, *, max_depth: int = MAX_DEPTH, decoder: msgspec.json.Decoder[Any] = _ANY) -> Any:
    """``raw`` decoded (to builtins: the key check needs dicts), or JsonShapeError / msgspec.DecodeError."""
    try:
        value = decoder.decode(raw)
    except RecursionError:
        raise too_deep(max_depth) from None
    check_json(raw, value, max_depth)
    return value


def check_json(raw: bytes, decoded: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise JsonShapeError if ``raw`` (which decoded to ``decoded``) nests too deep or repeats a key."""
    colons = raw.count(b":")
    brackets = raw.count(b"{") + raw.count(b"[")
    if decoded.__class__ is dict and colons == len(decoded) and brackets <= max_depth:
        return  # every colon is a top-level key's: no nesting, no string holds one, no key repeats
    if brackets > max_depth:
        _check_depth(decoded, max_depth, max_depth)
    # Re-encoded, the decoded value has one colon per kept key plus those inside its strings; the
    # body has one per key sent plus the same ones inside strings, unless a string hid a colon as
    # an escape. So equal counts mean no key was dropped, i.e. none was repeated.
    if colons == _encode(decoded).count(b":") and (b"\\" not in raw or b"\\u003" not in raw):  # \u003a: ':'
        return
    repeated = first_repeated_key(raw)
    if repeated is not None:
        raise JsonShapeError(f"duplicate key {repeated!r} in a JSON object")


def _check_depth(value: Any, depth_left: int, max_depth: int) -> None:
    if value.__class__ is dict:
        items: Any = value.values()
    elif value.__class__ is list:
        items = value
    else:
        return
    if depth_left <= 0:
        raise too_deep(max_depth)
    for item in items:
        _check_depth(item, depth_left - 1, max_depth)


def first_repeated_key(raw: bytes) -> str | None:
    """The first key that appears twice in one object of ``raw`` (valid JSON), compared decoded."""
    open_keys: list[set[str]] = []
    keys: set[str] = set()
    for match in _TOKEN.finditer(raw):
        key, opening = match.group(1, 2)
        if key is not None:
            name = msgspec.json.decode(key)  # "a" and "\u0061" are the same key
            if name in keys:
                return str(name)
            keys.add(name)
        elif opening is not None:
            open_keys.append(keys)
            keys = set()
        elif match.group(0) in (b"]", b"}") and open_keys:
            keys = open_keys.pop()
    return None


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json`` or a ``+json`` type, any parameters (``; charset=utf-8``)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == JSON_MEDIA_TYPE or (media.startswith("application/") and media.endswith("+json"))
