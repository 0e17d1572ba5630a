"""Physical lines of a feed body, read so that no body can cost more than reading it.

A feed is untrusted: a gzip body of a megabyte can hold a gigabyte of one endless line or of
nothing but newlines. ``LineSource`` reads the decompressed body in chunks and

- never holds more than ``max_line_bytes`` of one line: a longer line is skipped to its end (found
  with ``bytes.find``) and reported by its number, so the lines after it still go through;
- skips runs of blank lines with one regular-expression match per chunk instead of one Python
  step per line (a body of newlines is read at the speed of decompressing it);
- stops at a truncated or corrupt gzip stream as if the body ended there, dropping the line it
  cut and remembering why in ``broken`` (the caller reports it and marks the feed incomplete).

NDJSON lines end at ``\\n``. CSV lines end at ``\\r\\n``, ``\\n`` or a lone ``\\r`` (what Python's
universal newlines read), and ``CsvLines`` feeds them to ``csv.reader``, skipping blank lines only
between rows: inside a quoted field a blank line is data.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Callable, Iterator
from typing import Final

READ_CHUNK = 256 * 1024
STREAM_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, OSError)
TOO_LONG: Final = b"\0too long\0"  # returned in place of a skipped line (a line never equals it: no \n)

# Whitespace-only NDJSON lines up to the last newline of the run; empty CSV lines (any line end).
_BLANK_NDJSON = re.compile(rb"[ \t\r\n\f\v]*\n")
_BLANK_CSV = re.compile(rb"[\r\n]+")
_WHITESPACE = frozenset(b" \t\r\n\f\v")
_LINE_ENDS = frozenset(b"\r\n")


class LineTooLong(Exception):
    """Raised into ``csv.reader`` when a row's next line is too long: that row is rejected."""

    def __init__(self, line: int, limit: int) -> None:
        super().__init__(f"line {line} is longer than {limit} bytes")
        self.line = line


class LineSource:
    """Lines of a binary stream (``read(n)``), with the caps described in the module docstring."""

    def __init__(self, read: Callable[[int], bytes], *, max_line_bytes: int, csv: bool) -> None:
        self._read = read
        self.max_line_bytes = max_line_bytes
        self._csv = csv
        self._blank = _BLANK_CSV if csv else _BLANK_NDJSON
        self._blank_starts = _LINE_ENDS if csv else _WHITESPACE
        self._buf = b""
        self._pos = 0
        self._eof = False
        self.line = 0  # physical number of the last line returned or skipped
        self.broken: str | None = None

    def _fill(self) -> bool:
        """Append a chunk (dropping what was consumed); False at the end of the body."""
        if self._eof:
            return False
        try:
            chunk = self._read(READ_CHUNK)
        except STREAM_ERRORS as exc:
            self.broken = f"gzip stream is truncated or corrupt after line {self.line}: {exc}"
            chunk = b""
        if not chunk:
            self._eof = True
            return False
        self._buf = self._buf[self._pos :] + chunk
        self._pos = 0
        return True

    def skip_blank_lines(self) -> None:
        """Consume the blank lines at the current position, a chunk at a time."""
        if self._pos < len(self._buf) and self._buf[self._pos] not in self._blank_starts:
            return
        while True:
            buf, pos = self._buf, self._pos
            match = self._blank.match(buf, pos)
            end = pos if match is None else match.end()
            if end > pos and self._csv and buf[end - 1] == 13 and end == len(buf) and not self._eof:
                end -= 1  # a \r at the end of the chunk may be the first half of \r\n
            if end > pos:
                self.line += self._breaks(buf, pos, end)
                self._pos = end
            if self._pos < len(buf) or not self._fill():
                return

    def _breaks(self, buf: bytes, start: int, end: int) -> int:
        newlines = buf.count(b"\n", start, end)
        if not self._csv:
            return newlines
        return newlines + buf.count(b"\r", start, end) - buf.count(b"\r\n", start, end)

    def next_line(self) -> bytes | None:
        """The next line with its line end, ``TOO_LONG`` for a skipped one, None at the end."""
        while True:
            end = self._line_end()
            if end >= 0:
                line = self._buf[self._pos : end]
                self._pos = end
                self.line += 1
                return TOO_LONG if len(line) > self.max_line_bytes else line
            if len(self._buf) - self._pos > self.max_line_bytes:
                self._skip_rest_of_line()
                return TOO_LONG
            if not self._fill():
                if self.broken is not None or self._pos >= len(self._buf):
                    return None  # the end, or a cut: a line without its end may be incomplete
                line = self._buf[self._pos :]
                self._pos = len(self._buf)
                self.line += 1
                return TOO_LONG if len(line) > self.max_line_bytes else line

    def _line_end(self) -> int:
        """Index just past the end of the line at ``_pos``; -1 if the buffer does not hold it yet."""
        buf, pos = self._buf, self._pos
        newline = buf.find(b"\n", pos)
        if not self._csv:
            return newline + 1 if newline >= 0 else -1
        stop = newline if newline >= 0 else len(buf)
        cr = buf.find(b"\r", pos, stop)
        if cr < 0:
            return newline + 1 if newline >= 0 else -1
        if cr + 1 < len(buf):
            return cr + 2 if buf[cr + 1] == 10 else cr + 1
        return cr + 1 if self._eof else -1  # \r last in the chunk: \r\n or a lone \r?

    def _skip_rest_of_line(self) -> None:
        """Drop the over-long line at ``_pos`` through its end, reading on without keeping it."""
        self.line += 1
        while True:
            self._buf, self._pos = b"", 0
            if not self._fill():
                return
            end = self._line_end()
            if end >= 0:
                self._pos = end
                return
            if self._csv and self._buf.endswith(b"\r"):
                self._buf, self._pos = b"\r", 0  # keep the half of a possible \r\n

    def ndjson_lines(self) -> Iterator[tuple[int, bytes]]:
        """``(line, content)`` of every non-blank line; ``content`` is ``TOO_LONG`` for a skipped one."""
        limit = self.max_line_bytes
        while True:
            # The common case in a tight loop: whole lines of the buffer, none blank or too long.
            buf, pos, number = self._buf, self._pos, self.line
            while pos < len(buf) and buf[pos] not in _WHITESPACE:
                end = buf.find(b"\n", pos) + 1
                if end <= 0 or end - pos > limit:
                    break
                number += 1
                self._pos, self.line = end, number
                yield number, buf[pos:end]
                pos = end
            self.skip_blank_lines()
            line = self.next_line()
            if line is None:
                return
            yield self.line, line


class CsvLines:
    """The lines ``csv.reader`` pulls. Set ``at_row_start`` before asking the reader for a row: blank
    lines are then skipped in bulk and ``row_start`` records where the row begins. Too-long lines
    between rows are collected in ``skipped``; one inside a row raises LineTooLong into the reader."""

    def __init__(self, source: LineSource) -> None:
        self.source = source
        self.at_row_start = True
        self.row_start = 0
        self.skipped: list[int] = []

    def __iter__(self) -> CsvLines:
        return self

    def __next__(self) -> str:
        source = self.source
        if self.at_row_start:
            while True:
                source.skip_blank_lines()
                line = source.next_line()
                if line is not TOO_LONG:
                    break
                self.skipped.append(source.line)
            self.at_row_start = False
            self.row_start = source.line + 1 if line is None else source.line
        else:
            line = source.next_line()
            if line is TOO_LONG:
                raise LineTooLong(source.line, source.max_line_bytes)
        if line is None:
            raise StopIteration
        if source.line == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]  # the UTF-8 byte order mark some spreadsheets write
        # Undecodable bytes become lone surrogates, which the caller turns into a rejection of the row.
        return line.decode("utf-8", "surrogateescape")
