"""Feed readers: every bad record becomes a LineError with its line; a broken body stops cleanly."""

from __future__ import annotations

import gzip
import io
import random

import pytest

from ingest.parsing import (
    EmptyFeed,
    FeedError,
    FeedFormat,
    FeedReader,
    LineError,
    UnsupportedFeedFormat,
    format_from_content_type,
    format_from_filename,
)


def read(data: bytes, fmt: FeedFormat) -> tuple[FeedReader, list]:
    reader = FeedReader(io.BytesIO(data), fmt)
    return reader, list(reader.records())


def test_csv_messy_header_and_trailing_unnamed_columns() -> None:
    reader, out = read(b"index, product ,,\n1,Tea,,\n2,Coffee,,x\n3,Milk\n", FeedFormat.CSV)
    assert reader.columns == ["index", "product"]
    assert out == [
        (2, {"index": "1", "product": "Tea"}),
        (3, {"index": "2", "product": "Coffee"}),
        (4, {"index": "3", "product": "Milk"}),
    ]
    assert reader.complete


def test_csv_bom_blank_lines_and_multiline_fields_keep_physical_line_numbers() -> None:
    data = b'\xef\xbb\xbfa,b\n\n"multi\nline",1\n2,3\n'
    reader, out = read(data, FeedFormat.CSV)
    assert reader.columns == ["a", "b"]
    assert out == [(3, {"a": "multi\nline", "b": "1"}), (5, {"a": "2", "b": "3"})]


def test_csv_broken_quoting_wrong_width_and_bad_encoding_are_per_line() -> None:
    data = b'a,b\n1,2\n"x"y,3\n4,5,6\n\xff\xfe,7\n8,9\n"open,10\n11,12\n'
    _, out = read(data, FeedFormat.CSV)
    good = [r for r in out if not isinstance(r, LineError)]
    bad = [r for r in out if isinstance(r, LineError)]
    assert good == [(2, {"a": "1", "b": "2"}), (6, {"a": "8", "b": "9"})]
    assert [e.line for e in bad] == [3, 4, 5, 7]
    assert "quoting" in bad[0].reason
    assert "expected 2 fields, got 3" in bad[1].reason
    assert "UTF-8" in bad[2].reason
    assert "lines 7-8" in bad[3].reason


def test_csv_without_header_is_empty() -> None:
    with pytest.raises(EmptyFeed):
        read(b"\n", FeedFormat.CSV)
    with pytest.raises(EmptyFeed):
        FeedReader(io.BytesIO(b""), FeedFormat.CSV)


def test_ndjson_per_line_errors() -> None:
    data = b'{"a": 1.10}\n[1]\n{bad\n\n{"b": "\xff"}\n{"c": 2}\n'
    _, out = read(data, FeedFormat.NDJSON)
    assert out[0] == (1, {"a": __import__("decimal").Decimal("1.10")})
    assert [(e.line, e.reason.split(":")[0]) for e in out[1:4]] == [
        (2, "expected a JSON object, got list"),
        (3, "invalid JSON"),
        (5, "invalid UTF-8 byte sequence"),
    ]
    assert out[4] == (6, {"c": 2})


def test_json_array_streams_elements_with_their_lines() -> None:
    data = b'[\n {"a": 1},\n 3,\n {"b":\n "x"}, {"c": "\xff"}\n]\n'
    reader, out = read(data, FeedFormat.JSON)
    assert out[0] == (2, {"a": 1})
    assert out[1] == LineError(3, "expected a JSON object, got int")
    assert out[2] == (4, {"b": "x"})
    assert out[3] == LineError(5, "invalid UTF-8 byte sequence")
    assert reader.complete


def test_json_array_large_spans_many_chunks() -> None:
    body = b"[" + b",\n".join(b'{"i": %d, "pad": "%s"}' % (i, b"x" * 200) for i in range(5000)) + b"]"
    reader, out = read(body, FeedFormat.JSON)
    assert len(out) == 5000 and out[-1] == (5000, {"i": 4999, "pad": "x" * 200})
    assert reader.complete


@pytest.mark.parametrize(
    ("body", "line", "needle"),
    [
        (b'[\n {"a": 1},\n {"b": x}\n]', 3, "invalid JSON"),
        (b'[\n {"a": 1}\n', 3, "missing ']'"),
        (b'[\n {"a": 1} {"b": 2}]', 2, "expected ','"),
    ],
)
def test_json_array_syntax_error_stops_and_marks_incomplete(body: bytes, line: int, needle: str) -> None:
    reader, out = read(body, FeedFormat.JSON)
    assert out[0] == (2, {"a": 1})
    assert isinstance(out[-1], LineError) and out[-1].line == line and needle in out[-1].reason
    assert not reader.complete


def test_json_must_be_an_array() -> None:
    with pytest.raises(FeedError, match="array"):
        read(b'{"a": 1}', FeedFormat.JSON)
    with pytest.raises(EmptyFeed):
        read(b"  \n ", FeedFormat.JSON)


def _noisy_csv(rows: int) -> bytes:
    rng = random.Random(7)
    return b"a,b\n" + b"".join(b"%d,%d\n" % (i, rng.randrange(10**9)) for i in range(rows))


@pytest.mark.parametrize("fmt", [FeedFormat.CSV, FeedFormat.NDJSON])
def test_truncated_gzip_keeps_complete_lines_and_reports_the_cut(fmt: FeedFormat) -> None:
    plain = _noisy_csv(20000) if fmt is FeedFormat.CSV else b"".join(b'{"i": %d}\n' % i for i in range(20000))
    whole = gzip.compress(plain)
    reader, out = read(whole[: len(whole) // 2], fmt)
    assert not reader.complete
    assert isinstance(out[-1], LineError) and "truncated" in out[-1].reason
    good = [r for r in out if not isinstance(r, LineError)]
    # Every row yielded is a complete line of the original (no half line slipped through).
    original = plain.decode().splitlines()
    for line, row in good[-5:]:
        expected = original[line - 1]
        assert (f"{row['a']},{row['b']}" if fmt is FeedFormat.CSV else f'{{"i": {row["i"]}}}') == expected
    assert out[-1].line == good[-1][0] + 1


def test_gzip_body_is_detected_by_magic_bytes() -> None:
    reader, out = read(gzip.compress(b"a\n1\n"), FeedFormat.CSV)
    assert reader.compressed and out == [(2, {"a": "1"})]


def test_content_type_and_filename_detection() -> None:
    assert format_from_content_type("text/csv; charset=utf-8") is FeedFormat.CSV
    assert format_from_content_type("application/x-ndjson") is FeedFormat.NDJSON
    assert format_from_content_type("Application/JSON") is FeedFormat.JSON
    for bad in (None, "text/plain", "application/xml", "text/csv; charset=latin-1"):
        with pytest.raises(UnsupportedFeedFormat) as exc:
            format_from_content_type(bad)
        assert exc.value.status_code == 415
    assert format_from_filename("feed.ndjson.gz") is FeedFormat.NDJSON
    assert format_from_filename("x.JSONL") is FeedFormat.NDJSON
    with pytest.raises(UnsupportedFeedFormat):
        format_from_filename("feed.xlsx")
