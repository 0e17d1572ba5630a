"""Streaming feed readers: CSV, NDJSON and JSON arrays, optionally gzip-compressed.

A reader never holds more than one record (plus a small read buffer) in memory. It yields
``(line, row)`` for every record it could read and ``LineError(line, reason)`` for every record it
could not, so one bad line never stops the feed. ``line`` is always the physical line of the feed
(1-based) where the record starts; for CSV the header is line 1.

Problems with the body as a whole raise ``FeedError`` (the HTTP layer turns them into a 4xx):
unknown format (415), empty body (400), a CSV header that cannot be used (422), more than
``max_bytes`` once decompressed (413, raised when reading reaches it). A body that breaks off mid-way
(truncated gzip, JSON syntax error that makes the rest unreadable) yields a final ``LineError`` and
leaves ``reader.complete`` False: the service then skips ``--mode full`` removals, because products
missing from an incomplete feed are not known to be gone.

A hostile body costs what reading it costs: lines longer than ``max_line_bytes`` are skipped
without being held (``ingest.lines``), blank lines are skipped in bulk, and a record nested deeper
than ``kernel.http.json_guard.MAX_DEPTH`` or repeating a key is rejected alone.
"""

from __future__ import annotations

import codecs
import csv
import enum
import gzip
import io
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import IO, Any, NamedTuple

import msgspec

from ingest.feed_records import (
    EmptyFeed,
    FeedError,
    FeedTooLarge,
    LineError,
    ParsedRecord,
    ReadStopped,
    Row,
    UnsupportedFeedFormat,
)
from ingest.json_array import JsonArrayReader
from ingest.lines import TOO_LONG, CsvLines, LineSource, LineTooLong
from kernel.http.json_guard import JsonShapeError, check_json, too_deep

__all__ = [
    "EmptyFeed",
    "FeedError",
    "FeedFormat",
    "FeedLimits",
    "FeedReader",
    "FeedTooLarge",
    "LineError",
    "ParsedRecord",
    "ReadStopped",
    "Row",
    "UnsupportedFeedFormat",
    "format_from_content_type",
    "format_from_filename",
]

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_MAX_LINE_BYTES = 1024 * 1024
_READ_CHUNK = 256 * 1024
# A quote left open swallows the rest of the file into one field; bound what that can cost.
csv.field_size_limit(8 * 1024 * 1024)


class FeedLimits(NamedTuple):
    """What one feed may cost: bytes once decompressed (None: no limit) and bytes per line or element."""

    max_bytes: int | None = None
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES


class FeedFormat(enum.StrEnum):
    CSV = "csv"
    NDJSON = "ndjson"
    JSON = "json"


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


class _Decompressed:
    """``read(n)`` of the body's content (decompressed), refusing to go past ``limit`` bytes, and
    stopping (``ReadStopped``) at the first chunk after ``should_stop`` says so."""

    def __init__(
        self,
        stream: IO[bytes],
        limit: int | None,
        compressed: bool,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        self._read1 = stream.read1  # type: ignore[attr-defined]
        self.limit = limit
        self.compressed = compressed
        self.should_stop = should_stop
        self.size = 0

    def read(self, n: int) -> bytes:
        if self.should_stop is not None and self.should_stop():
            raise ReadStopped("reading the feed was stopped")
        chunk: bytes = self._read1(n)
        self.size += len(chunk)
        if self.limit is not None and self.size > self.limit:
            state = "once decompressed" if self.compressed else ""
            raise FeedTooLarge(f"the feed is larger than the limit of {self.limit} bytes {state}".rstrip())
        return chunk


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
        max_bytes: int | None = None,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.format = fmt
        self.max_line_bytes = max_line_bytes
        self._counter = CountingReader(source, on_read)
        buffered = io.BufferedReader(self._counter, buffer_size=_READ_CHUNK)
        head = buffered.peek(2)[:2]
        if not head:
            raise EmptyFeed("empty feed body")
        self.compressed = head == GZIP_MAGIC
        stream: IO[bytes] = gzip.GzipFile(fileobj=buffered, mode="rb") if self.compressed else buffered  # type: ignore[assignment]
        self._body = _Decompressed(stream, max_bytes, self.compressed, should_stop)
        self.complete = True
        self.columns: list[str] | None = None
        self._array: JsonArrayReader | None = None

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

    def _too_long(self, line: int) -> LineError:
        return LineError(line, f"line longer than {self.max_line_bytes} bytes")

    # -- CSV --------------------------------------------------------------------------------

    def _csv_records(self) -> Iterator[ParsedRecord]:
        source = LineSource(self._body.read, max_line_bytes=self.max_line_bytes, csv=True)
        lines = CsvLines(source)
        reader = csv.reader(lines, strict=True)
        header = _CsvHeader(self._csv_header_fields(reader, lines))
        self.columns = list(header.keys)
        while True:
            lines.at_row_start = True
            try:
                fields = next(reader)
            except StopIteration:
                break
            except (csv.Error, LineTooLong) as exc:
                start, last = lines.row_start, source.line
                yield from self._skipped(lines)
                what = "broken CSV quoting: " if isinstance(exc, csv.Error) else ""
                yield LineError(start, f"{_span(start, last)}{what}{exc}")
                continue
            start, last = lines.row_start, source.line
            yield from self._skipped(lines)
            if fields:  # else a blank line
                yield _csv_record(header, fields, start, last)
        yield from self._skipped(lines)
        if source.broken is not None:
            # The cut line never reaches the parser: the source drops a line it cannot see the end of.
            self.complete = False
            yield LineError(source.line + 1, source.broken)

    def _csv_header_fields(self, reader: Iterator[list[str]], lines: CsvLines) -> list[str]:
        """The first line of a CSV feed; a header that cannot be used rejects the whole feed."""
        try:
            header = next(reader)
        except StopIteration:
            header = []
        except (csv.Error, LineTooLong) as exc:
            raise FeedError(f"line 1: unreadable CSV header: {exc}") from exc
        if lines.source.broken is not None and not header:
            raise FeedError(lines.source.broken)
        if lines.skipped:
            raise FeedError(
                f"line {lines.skipped[0]}: the CSV header is longer than {self.max_line_bytes} bytes"
            )
        if not any(h.strip() for h in header):
            raise EmptyFeed("the CSV feed has no header line")
        if not _valid_utf8(header):
            raise FeedError("line 1: the CSV header is not valid UTF-8")
        return header

    def _skipped(self, lines: CsvLines) -> Iterator[LineError]:
        """Too-long lines met between rows (before the row just read)."""
        if lines.skipped:
            yield from (self._too_long(line) for line in lines.skipped)
            lines.skipped.clear()

    # -- NDJSON -----------------------------------------------------------------------------

    def _ndjson_records(self) -> Iterator[ParsedRecord]:
        decode = _JSON_DECODER.decode
        source = LineSource(self._body.read, max_line_bytes=self.max_line_bytes, csv=False)
        for line, raw in source.ndjson_lines():
            if raw is TOO_LONG:
                yield self._too_long(line)
                continue
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
            except RecursionError:
                yield LineError(line, too_deep().reason)
                continue
            if not isinstance(obj, dict):
                yield LineError(line, f"expected a JSON object, got {type(obj).__name__}")
                continue
            try:
                check_json(raw, obj)
            except JsonShapeError as exc:
                yield LineError(line, exc.reason)
                continue
            yield line, obj
        if source.broken is not None:
            self.complete = False
            yield LineError(source.line + 1, source.broken)

    # -- JSON array -------------------------------------------------------------------------

    def _json_array_records(self) -> Iterator[ParsedRecord]:
        array = JsonArrayReader(self._body.read, max_element_chars=self.max_line_bytes)
        try:
            yield from array.records()
        finally:
            self.complete = self.complete and array.complete


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


def _ndjson_reason(raw: bytes, exc: Exception) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid UTF-8 byte sequence"
    return f"invalid JSON: {exc}"
