"""Incremental reading of a JSON-array feed, ``[ {...}, {...} ]``: one element at a time, never the
whole array.

Each element is decoded from a text buffer with the stdlib's ``raw_decode``, which also says where
it ends; the buffer grows by chunks until the element fits, up to ``max_element_chars``. An element
that is not an object, not valid UTF-8, longer than the limit, nested too deep or repeating a key is
rejected alone. A syntax error, or an element whose end is not found within the limit, makes the
rest unreadable: the reader then yields a final ``LineError`` and sets ``complete`` False.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Generator, Iterator
from decimal import Decimal

from ingest.feed_records import EmptyFeed, FeedError, LineError, ParsedRecord
from ingest.lines import STREAM_ERRORS
from kernel.http.json_guard import JsonShapeError, check_json, too_deep

_READ_CHUNK = 256 * 1024
_DECODER = json.JSONDecoder(parse_float=Decimal)
_WHITESPACE = re.compile(r"[ \t\r\n\ufeff]*")
# A whole string, or one bracket: enough to find where a nested value ends.
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


class JsonArrayReader:
    """The elements of one JSON-array body read through ``read(n)`` (decompressed bytes)."""

    def __init__(self, read: Callable[[int], bytes], *, max_element_chars: int) -> None:
        self._read = read
        self.max_element_chars = max_element_chars
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._buf = ""
        self._pos = 0
        self._eof = False
        self.line = 1  # line of the buffer's current position
        self.complete = True
        self.broken: str | None = None

    def _fill(self) -> bool:
        if self._eof:
            return False
        try:
            chunk = self._read(_READ_CHUNK)
        except STREAM_ERRORS as exc:
            self.complete = False
            self.broken = f"gzip stream is truncated or corrupt: {exc}"
            chunk = b""
        if not chunk:
            self._eof = True
            self._buf = self._buf[self._pos :] + self._decoder.decode(b"", final=True)
            self._pos = 0
            return False
        self._buf = self._buf[self._pos :] + self._decoder.decode(chunk)
        self._pos = 0
        return True

    def _skip_whitespace(self) -> bool:
        """Advance past whitespace, counting lines; False at the end of the input."""
        while True:
            buf, pos = self._buf, self._pos
            end = _WHITESPACE.match(buf, pos).end()  # type: ignore[union-attr]  # matches the empty string
            self.line += buf.count("\n", pos, end)
            self._pos = end
            if end < len(buf):
                return True
            if not self._fill():
                return False

    def records(self) -> Iterator[ParsedRecord]:
        self._open_array()
        started = False
        while (yield from self._at_element(started)):
            started = True
            record, rest_unreadable = self._element()
            yield record
            if rest_unreadable:
                self.complete = False
                return

    def _open_array(self) -> None:
        """Consume the ``[`` that opens the feed; a body that is not a JSON array rejects the whole feed."""
        if not self._skip_whitespace():
            if self.broken is not None:
                raise FeedError(self.broken)
            raise EmptyFeed("empty feed body")
        if self._buf[self._pos] != "[":
            raise FeedError(
                "line 1: a JSON feed must be an array of objects (use NDJSON for one object per line)"
            )
        self._pos += 1

    def _at_element(self, started: bool) -> Generator[LineError, None, bool]:
        """Move past the ',' before the next element: True when one follows; False at the end of the
        array (after yielding why, when the array is not closed cleanly)."""
        if self._skip_whitespace():
            ch = self._buf[self._pos]
            if ch == "]":
                self._pos += 1
                if self._skip_whitespace():
                    yield LineError(self.line, "unexpected data after the end of the JSON array")
                return False
            if not started:
                return True
            if ch != ",":
                self.complete = False
                reason = f"invalid JSON: expected ',' or ']' but found {ch!r}; rest not read"
                yield LineError(self.line, reason)
                return False
            self._pos += 1
            if self._skip_whitespace():
                return True
        self.complete = False
        yield LineError(self.line, self.broken or "unexpected end of JSON array (missing ']')")
        return False

    def _element(self) -> tuple[ParsedRecord, bool]:
        """The element at the current position, and whether the rest of the array is unreadable."""
        start_line = self.line
        while True:
            try:
                value, end = _DECODER.raw_decode(self._buf, self._pos)
                break
            except json.JSONDecodeError as exc:
                err_line = start_line + self._buf.count("\n", self._pos, exc.pos)
                # Most likely the element continues in the next chunk; only a syntax error that persists
                # at the end of the input (or in an element past the limit) is final.
                if self._room() and self._fill():
                    continue
                reason = self.broken or self._cut_reason(f"invalid JSON: {exc.msg}")
                return LineError(err_line, reason), True
            except RecursionError:
                end = self._nested_end()
                if end < 0:
                    if self._room() and self._fill():
                        continue
                    return LineError(start_line, self._cut_reason(too_deep().reason)), True
                self._advance(end)
                return LineError(start_line, too_deep().reason), False
        text = self._buf[self._pos : end]
        self._advance(end)
        return self._checked(start_line, text, value), False

    def _checked(self, line: int, text: str, value: object) -> ParsedRecord:
        if len(text) > self.max_element_chars:
            return LineError(line, f"element longer than {self.max_element_chars} characters")
        try:
            raw = text.encode("utf-8")
        except UnicodeEncodeError:
            return LineError(line, "invalid UTF-8 byte sequence")
        if not isinstance(value, dict):
            return LineError(line, f"expected a JSON object, got {type(value).__name__}")
        try:
            check_json(raw, value)
        except JsonShapeError as exc:
            return LineError(line, exc.reason)
        return line, value

    def _room(self) -> bool:
        return len(self._buf) - self._pos < self.max_element_chars

    def _cut_reason(self, reason: str) -> str:
        if not self._room():
            reason = f"element longer than {self.max_element_chars} characters"
        return f"{reason}; the rest of the array was not read"

    def _advance(self, end: int) -> None:
        self.line += self._buf.count("\n", self._pos, end)
        self._pos = end

    def _nested_end(self) -> int:
        """Where the value at the current position ends, by its brackets alone; -1 if not in the buffer.

        Only for a value too deep for the decoder's recursion, which is rejected anyway."""
        depth = 0
        for match in _STRING_OR_BRACKET.finditer(self._buf, self._pos):
            token = match.group()
            if token in ("[", "{"):
                depth += 1
            elif token in ("]", "}"):
                depth -= 1
                if depth <= 0:
                    return match.end()
        return -1
