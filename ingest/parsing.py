"""Streaming feed readers: CSV, NDJSON and JSON arrays, optionally gzip-compressed.

A reader never holds more than one record (plus a small read buffer) in memory. It yields
``(line, row)`` for every record it could read and ``LineError(line, reason)`` for every record it
could not, so one bad line never stops the feed. ``line`` is always the physical line of the feed
(1-based) where the record starts; for CSV the header is line 1.

Problems with the body as a whole raise ``FeedError`` (the HTTP layer turns them into a 4xx):
unknown format (415), empty body (400), a CSV header that cannot be used (422). A body that breaks
off mid-way (truncated gzip, JSON syntax error that makes the rest unreadable) yields a final
``LineError`` and leaves ``reader.complete`` False: the service then skips ``--mode full``
removals, because products missing from an incomplete feed are not known to be gone.
"""

from __future__ import annotations

import codecs
import csv
import enum
import gzip
import io
import json
import zlib
from collections.abc import Callable, Generator, Iterator
from decimal import Decimal
from typing import IO, Any, NamedTuple

import msgspec

GZIP_MAGIC = b"\x1f\x8b"
_MAX_JSON_ELEMENT_CHARS = 4 * 1024 * 1024
_READ_CHUNK = 256 * 1024
# What a truncated or corrupt gzip body raises while it is read.
_STREAM_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, OSError)
# A quote left open swallows the rest of the file into one field; bound what that can cost.
csv.field_size_limit(8 * 1024 * 1024)


class FeedFormat(enum.StrEnum):
    CSV = "csv"
    NDJSON = "ndjson"
    JSON = "json"


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


Row = dict[str, Any]
ParsedRecord = tuple[int, Row] | LineError

_CONTENT_TYPES: dict[str, FeedFormat] = {
    "text/csv": FeedFormat.CSV,
    "application/csv": FeedFormat.CSV,
    "text/comma-separated-values": FeedFormat.CSV,
    "application/x-ndjson": FeedFormat.NDJSON,
    "application/ndjson": FeedFormat.NDJSON,
    "application/jsonl": FeedFormat.NDJSON,
    "application/x-jsonlines": FeedFormat.NDJSON,
    "application/json": FeedFormat.JSON,
}
_EXTENSIONS: dict[str, FeedFormat] = {
    ".csv": FeedFormat.CSV,
    ".ndjson": FeedFormat.NDJSON,
    ".jsonl": FeedFormat.NDJSON,
    ".json": FeedFormat.JSON,
}
SUPPORTED_CONTENT_TYPES = tuple(_CONTENT_TYPES)


def format_from_content_type(content_type: str | None) -> FeedFormat:
    """``text/csv; charset=utf-8`` -> CSV. Raises UnsupportedFeedFormat (415) otherwise."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    fmt = _CONTENT_TYPES.get(media)
    if fmt is None:
        raise UnsupportedFeedFormat(
            f"unsupported content type {media or '(none)'!r}; "
            f"send one of {', '.join(SUPPORTED_CONTENT_TYPES)}"
        )
    charset = _charset(content_type or "")
    if charset and charset.replace("-", "").replace("_", "") not in {"utf8", "usascii", "ascii"}:
        raise UnsupportedFeedFormat(f"unsupported charset {charset!r}; feeds are UTF-8")
    return fmt


def _charset(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


def format_from_filename(name: str) -> FeedFormat:
    """``feed.ndjson.gz`` -> NDJSON (a ``.gz`` suffix only says the file is compressed)."""
    lowered = name.lower()
    if lowered.endswith(".gz"):
        lowered = lowered[:-3]
    for ext, fmt in _EXTENSIONS.items():
        if lowered.endswith(ext):
            return fmt
    raise UnsupportedFeedFormat(f"cannot tell the format of {name!r}; use .csv, .ndjson, .jsonl or .json")


class CountingReader(io.RawIOBase):
    """Counts bytes read from the underlying stream (progress bars, size limits)."""

    def __init__(self, raw: IO[bytes], on_read: Callable[[int], None] | None = None) -> None:
        self._raw = raw
        self._on_read = on_read
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.bytes_read += n
        if self._on_read is not None and n:
            self._on_read(n)
        return n


class FeedReader:
    """Iterate the records of one feed body.

    ``source`` is a binary stream positioned at the start of the body. gzip is detected from its
    magic bytes, so ``Content-Encoding: gzip``, a ``.gz`` file and a plain body all work.
    """

    def __init__(
        self,
        source: IO[bytes],
        fmt: FeedFormat,
        *,
        on_read: Callable[[int], None] | None = None,
    ) -> None:
        self.format = fmt
        self._counter = CountingReader(source, on_read)
        buffered = io.BufferedReader(self._counter, buffer_size=_READ_CHUNK)
        head = buffered.peek(2)[:2]
        if not head:
            raise EmptyFeed("empty feed body")
        self.compressed = head == GZIP_MAGIC
        self._stream: IO[bytes] = (
            gzip.GzipFile(fileobj=buffered, mode="rb") if self.compressed else buffered  # type: ignore[assignment]
        )
        self.complete = True
        self.columns: list[str] | None = None
        self._line = 0
        self._broken: str | None = None

    @property
    def bytes_read(self) -> int:
        """Bytes of the body consumed so far (compressed bytes for a gzip body)."""
        return self._counter.bytes_read

    def records(self) -> Iterator[ParsedRecord]:
        if self.format is FeedFormat.CSV:
            return self._csv_records()
        if self.format is FeedFormat.NDJSON:
            return self._ndjson_records()
        return self._json_array_records()

    # -- raw lines --------------------------------------------------------------------------

    def _raw_lines(self) -> Iterator[bytes]:
        """Physical lines; a truncated or corrupt gzip stream ends them and marks the feed incomplete."""
        lines = iter(self._stream)
        while True:
            try:
                raw = next(lines)
                if not raw.endswith(b"\n"):
                    # Possibly cut mid-line: hold it back until we know the stream ended cleanly.
                    for _ in lines:
                        pass
            except StopIteration:
                return
            except _STREAM_ERRORS as exc:
                self._mark_broken(f"gzip stream is truncated or corrupt after line {self._line}: {exc}")
                return
            self._line += 1
            yield raw

    def _tail_error(self) -> Iterator[LineError]:
        if self._broken is not None:
            yield LineError(self._line + 1, self._broken)

    # -- CSV --------------------------------------------------------------------------------

    def _csv_records(self) -> Iterator[ParsedRecord]:
        # csv.reader pulls lines straight from a C-level text decoder (no per-line Python code).
        # Undecodable bytes become lone surrogates, which the per-record check below turns into a
        # rejection of that record only.
        text = io.TextIOWrapper(
            self._stream,
            encoding="utf-8-sig",
            errors="surrogateescape",
            newline="",
        )
        reader = csv.reader(text, strict=True)
        header = _CsvHeader(_csv_header_fields(reader))
        self.columns = list(header.keys)
        last = reader.line_num
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                start, last = last + 1, reader.line_num
                yield LineError(start, f"{_span(start, last)}broken CSV quoting: {exc}")
                continue
            except _STREAM_ERRORS as exc:
                # The cut line never reaches the parser: the decoder raises before returning it.
                self.complete = False
                yield LineError(last + 1, f"gzip stream is truncated or corrupt after line {last}: {exc}")
                return
            start, last = last + 1, reader.line_num
            if fields:  # else a blank line
                yield _csv_record(header, fields, start, last)

    # -- NDJSON -----------------------------------------------------------------------------

    def _ndjson_records(self) -> Iterator[ParsedRecord]:
        decode = _JSON_DECODER.decode
        for raw in self._raw_lines():
            line = self._line
            if line == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[3:]
            if not raw.strip():
                continue
            try:
                obj = decode(raw)
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                # msgspec >= 0.23 reports bad UTF-8 as a DecodeError; older ones raised
                # UnicodeDecodeError. Either way, tell the supplier which it was.
                yield LineError(line, _ndjson_reason(raw, exc))
                continue
            if not isinstance(obj, dict):
                yield LineError(line, f"expected a JSON object, got {type(obj).__name__}")
                continue
            yield line, obj
        yield from self._tail_error()

    # -- JSON array -------------------------------------------------------------------------

    def _json_array_records(self) -> Iterator[ParsedRecord]:
        """Incremental decoding of ``[ {...}, {...} ]``: one element at a time, never the whole array."""
        text = _JsonText(self._stream, self._mark_broken)
        _open_json_array(text)
        started = False
        while (yield from self._at_json_element(text, started)):
            started = True
            element = text.decode_value()
            if isinstance(element, LineError):
                self.complete = False
                yield element
                return
            yield _json_record(element)

    def _at_json_element(self, text: _JsonText, started: bool) -> Generator[LineError, None, bool]:
        """Move past the ',' before the next element: True when one follows; False at the end of the
        array (after yielding why, when the array is not closed cleanly)."""
        if text.skip_ws():
            ch = text.buf[text.pos]
            if ch == "]":
                text.pos += 1
                if text.skip_ws():
                    yield LineError(text.line, "unexpected data after the end of the JSON array")
                return False
            if not started:
                return True
            if ch != ",":
                self.complete = False
                yield LineError(
                    text.line, f"invalid JSON: expected ',' or ']' but found {ch!r}; rest not read"
                )
                return False
            text.pos += 1
            if text.skip_ws():
                return True
        self.complete = False
        yield LineError(text.line, text.broken or "unexpected end of JSON array (missing ']')")
        return False

    def _mark_broken(self, reason: str) -> None:
        """The body broke off (truncated or corrupt gzip): what was read stands, the feed is incomplete."""
        self.complete = False
        self._broken = reason


def _csv_header_fields(reader: Iterator[list[str]]) -> list[str]:
    """The first line of a CSV feed; a header that cannot be used rejects the whole feed."""
    try:
        header = next(reader)
    except StopIteration:
        header = []
    except csv.Error as exc:
        raise FeedError(f"line 1: unreadable CSV header: {exc}") from exc
    except _STREAM_ERRORS as exc:
        raise FeedError(f"gzip stream is truncated or corrupt: {exc}") from exc
    if not any(h.strip() for h in header):
        raise EmptyFeed("the CSV feed has no header line")
    if not _valid_utf8(header):
        raise FeedError("line 1: the CSV header is not valid UTF-8")
    return header


class _CsvHeader:
    """The columns of a CSV feed. Only named columns reach the profile: messy exports add trailing
    unnamed columns."""

    def __init__(self, header: list[str]) -> None:
        self.names = [h.strip() for h in header]
        self.width = len(self.names)
        self.named = [i for i, n in enumerate(self.names) if n]
        self.keys = [self.names[i] for i in self.named]
        self.simple = len(self.named) == self.width

    def row(self, fields: list[str]) -> Row | None:
        """The named fields of one line; None when its field count does not fit the header."""
        names, named, n = self.names, self.named, len(fields)
        if n == self.width:
            return (
                dict(zip(self.keys, fields, strict=True))
                if self.simple
                else {names[i]: fields[i] for i in named}
            )
        if _only_blank_extras(fields, names, self.width):
            return {names[i]: fields[i] if i < n else "" for i in named}
        return None


def _csv_record(header: _CsvHeader, fields: list[str], start: int, last: int) -> ParsedRecord:
    """The record of the CSV line(s) ``start``..``last``, or why it was rejected."""
    if not _valid_utf8(fields):
        return LineError(start, f"{_span(start, last)}invalid UTF-8 byte sequence")
    row = header.row(fields)
    if row is None:
        return LineError(
            start, f"{_span(start, last)}expected {header.width} fields, got {len(fields)} (check quoting)"
        )
    return start, row


class _JsonElement(NamedTuple):
    line: int  # where the element starts
    value: Any
    text: str


class _JsonText:
    """The decoded body of a JSON feed, read chunk by chunk: ``buf[pos:]`` is not consumed yet and
    ``line`` is the line of ``buf[pos]``."""

    def __init__(self, stream: IO[bytes], on_broken: Callable[[str], None]) -> None:
        self._stream = stream
        self._on_broken = on_broken
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.buf = ""
        self.pos = 0
        self.line = 1
        self._eof = False
        self.broken: str | None = None

    def fill(self) -> bool:
        """Append the next chunk to what is not consumed yet; False at the end of the body."""
        if self._eof:
            return False
        try:
            chunk = self._stream.read1(_READ_CHUNK)  # type: ignore[attr-defined]
        except _STREAM_ERRORS as exc:
            self.broken = f"gzip stream is truncated or corrupt: {exc}"
            self._on_broken(self.broken)
            chunk = b""
        if not chunk:
            self._eof = True
            self.buf = self.buf[self.pos :] + self._decoder.decode(b"", final=True)
            self.pos = 0
            return False
        self.buf = self.buf[self.pos :] + self._decoder.decode(chunk)
        self.pos = 0
        return True

    def skip_ws(self) -> bool:
        """Advance past whitespace, keeping ``line``; False at end of input."""
        while True:
            buf, pos, n = self.buf, self.pos, len(self.buf)
            while pos < n and buf[pos] in " \t\r\n\ufeff":
                if buf[pos] == "\n":
                    self.line += 1
                pos += 1
            self.pos = pos
            if pos < n:
                return True
            if not self.fill():
                return False

    def decode_value(self) -> _JsonElement | LineError:
        """The JSON value at ``pos``, consumed; a LineError when it cannot be read (nor anything after it)."""
        start_line = self.line
        while True:
            try:
                value, end = _STDLIB_JSON.raw_decode(self.buf, self.pos)
                break
            except json.JSONDecodeError as exc:
                err_line = start_line + self.buf.count("\n", self.pos, exc.pos)
                # Most likely the element continues in the next chunk; only a syntax error
                # that persists at end of input (or in an oversized element) is final.
                if len(self.buf) - self.pos < _MAX_JSON_ELEMENT_CHARS and self.fill():
                    continue
                return LineError(
                    err_line, self.broken or f"invalid JSON: {exc.msg}; the rest of the array was not read"
                )
        text = self.buf[self.pos : end]
        self.line += text.count("\n")
        self.pos = end
        return _JsonElement(start_line, value, text)


def _open_json_array(text: _JsonText) -> None:
    """Consume the ``[`` that opens the feed; a body that is not a JSON array rejects the whole feed."""
    if not text.skip_ws():
        if text.broken is not None:
            raise FeedError(text.broken)
        raise EmptyFeed("empty feed body")
    if text.buf[text.pos] != "[":
        raise FeedError(
            "line 1: a JSON feed must be an array of objects (use NDJSON for one object per line)"
        )
    text.pos += 1


def _json_record(element: _JsonElement) -> ParsedRecord:
    try:
        element.text.encode("utf-8")
    except UnicodeEncodeError:
        return LineError(element.line, "invalid UTF-8 byte sequence")
    if not isinstance(element.value, dict):
        return LineError(element.line, f"expected a JSON object, got {type(element.value).__name__}")
    return element.line, element.value


def _valid_utf8(fields: list[str]) -> bool:
    """False if decoding left lone surrogates (invalid UTF-8 in the input); ASCII short-circuits."""
    joined = "".join(fields)
    if joined.isascii():
        return True
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _span(start: int, end: int) -> str:
    return f"lines {start}-{end}: " if end > start else ""


def _only_blank_extras(fields: list[str], names: list[str], width: int) -> bool:
    """Tolerate rows that add or drop trailing *unnamed, empty* columns (spreadsheet exports)."""
    n = len(fields)
    if n > width:
        return not any(f.strip() for f in fields[width:])
    return all(not names[i] for i in range(n, width))


_JSON_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_STDLIB_JSON = json.JSONDecoder(parse_float=Decimal)


def _ndjson_reason(raw: bytes, exc: Exception) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid UTF-8 byte sequence"
    return f"invalid JSON: {exc}"
