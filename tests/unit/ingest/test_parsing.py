"""Feed readers: every bad record becomes a LineError with its line; a broken body stops cleanly."""

from __future__ import annotations

import gzip
import io
import random
import time
import tracemalloc
from collections.abc import Callable

import pytest

from ingest.parsing import (
    EmptyFeed,
    FeedError,
    FeedFormat,
    FeedReader,
    FeedTooLarge,
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


# -- hostile bodies: capped, skipped line by line, never held whole -----------------------------

MiB = 1024 * 1024


def gzip_of(block: bytes, times: int, *, head: bytes = b"", tail: bytes = b"") -> bytes:
    """``head + block * times + tail`` gzip-compressed in almost no time (gzip members concatenate)."""
    return gzip.compress(head) + gzip.compress(block) * times + gzip.compress(tail)


def peak_memory(fn: Callable[[], object]) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_gzip_bomb_stops_at_the_decompressed_limit_without_holding_it() -> None:
    bombs = (
        (FeedFormat.CSV, b"sku,title\n", b"a" * MiB),  # one endless line
        (FeedFormat.NDJSON, b"", b"\n" * MiB),  # nothing but newlines
        (FeedFormat.JSON, b"[", b" \t" * (MiB // 2)),  # nothing but whitespace
    )
    for fmt, head, block in bombs:
        body = gzip_of(block, 256, head=head)
        assert len(body) < MiB
        reader = FeedReader(io.BytesIO(body), fmt, max_bytes=16 * MiB)
        started = time.perf_counter()
        with pytest.raises(
            FeedTooLarge, match=f"larger than the limit of {16 * MiB} bytes once decompressed"
        ):
            peak_memory(lambda: list(reader.records()))  # noqa: B023
        assert time.perf_counter() - started < 5, fmt


@pytest.mark.parametrize("fmt", [FeedFormat.CSV, FeedFormat.NDJSON])
def test_a_line_of_hundreds_of_megabytes_is_rejected_alone_in_constant_memory(fmt: FeedFormat) -> None:
    if fmt is FeedFormat.CSV:
        head, tail, first = b"sku,title\nA,1\n", b"\nB,2\n", (2, {"sku": "A", "title": "1"})
        last = (4, {"sku": "B", "title": "2"})
    else:
        head, tail, first = b'{"sku":"A"}\n', b'\n{"sku":"B"}\n', (1, {"sku": "A"})
        last = (3, {"sku": "B"})
    body = gzip_of(b"a" * MiB, 256, head=head, tail=tail)
    out, peak = peak_memory(lambda: list(FeedReader(io.BytesIO(body), fmt, max_line_bytes=MiB).records()))
    too_long_line = last[0] - 1
    assert out == [first, LineError(too_long_line, f"line longer than {MiB} bytes"), last]
    assert peak < 8 * MiB, peak


def test_a_too_long_line_inside_a_quoted_csv_field_rejects_that_row() -> None:
    data = b'a,b\n1,"x\n' + b"y" * 100 + b'\nz",2\n3,4\n' + b"w" * 100 + b"\n5,6\n"
    out = list(FeedReader(io.BytesIO(data), FeedFormat.CSV, max_line_bytes=50).records())
    good = [r for r in out if not isinstance(r, LineError)]
    bad = [r for r in out if isinstance(r, LineError)]
    assert good[-2:] == [(5, {"a": "3", "b": "4"}), (7, {"a": "5", "b": "6"})]
    assert bad[0] == LineError(2, "lines 2-3: line 3 is longer than 50 bytes")
    assert LineError(6, "line longer than 50 bytes") in bad


@pytest.mark.parametrize("fmt", [FeedFormat.CSV, FeedFormat.NDJSON, FeedFormat.JSON])
def test_a_body_of_newlines_costs_what_decompressing_it_costs(fmt: FeedFormat) -> None:
    head, tail = {
        FeedFormat.CSV: (b"sku\n", b"\nLAST\n"),
        FeedFormat.NDJSON: (b"", b'\n{"sku":"LAST"}\n'),
        FeedFormat.JSON: (b"[", b'\n{"sku":"LAST"}]'),
    }[fmt]
    body = gzip_of(b"\r\n" * (MiB // 2), 64, head=head, tail=tail)
    started = time.perf_counter()
    inflated = 0
    with gzip.GzipFile(fileobj=io.BytesIO(body)) as plain:
        while chunk := plain.read1(256 * 1024):
            inflated += len(chunk)
    decompressing = time.perf_counter() - started
    started = time.perf_counter()
    out, peak = peak_memory(lambda: list(FeedReader(io.BytesIO(body), fmt).records()))
    reading = time.perf_counter() - started
    lines = 64 * MiB // 2 + 2 + (1 if fmt is FeedFormat.CSV else 0)
    assert out == [(lines, {"sku": "LAST"})]
    assert reading < 4 * decompressing + 1, (reading, decompressing)
    assert peak < 8 * MiB, peak


def test_bare_carriage_returns_end_csv_lines_even_across_chunks() -> None:
    rows = b"".join(b"%d,%s\r" % (i, b"x" * (i % 300)) for i in range(3000))
    out = list(FeedReader(io.BytesIO(b"a,b\r" + rows + b"\r\r"), FeedFormat.CSV).records())
    assert len(out) == 3000 and all(not isinstance(r, LineError) for r in out)
    assert out[-1] == (3001, {"a": "2999", "b": "x" * (2999 % 300)})


def test_deep_or_repeated_keys_reject_one_ndjson_line() -> None:
    deep = b'{"a":' * 1000 + b"1" + b"}" * 1000
    medium = b'{"sku":"M","x":' + b"[" * 40 + b"]" * 40 + b"}"
    data = b"\n".join([b'{"sku":"A"}', deep, medium, b'{"sku":"B","sku":"C"}', b'{"sku":"D"}']) + b"\n"
    _, out = read(data, FeedFormat.NDJSON)
    assert out == [
        (1, {"sku": "A"}),
        LineError(2, "JSON nested deeper than 32 levels"),
        LineError(3, "JSON nested deeper than 32 levels"),
        LineError(4, "duplicate key 'sku' in a JSON object"),
        (5, {"sku": "D"}),
    ]


def test_deep_or_repeated_keys_reject_one_json_array_element() -> None:
    deep = b'{"a":' * 5000 + b'"]}"' + b"}" * 5000
    medium = b'{"sku":"M","x":' + b"[" * 40 + b"]" * 40 + b"}"
    data = (
        b"[\n"
        + b",\n".join([b'{"sku":"A"}', deep, medium, b'{"sku":"B","sku":"C"}', b'{"sku":"D"}'])
        + b"\n]"
    )
    reader, out = read(data, FeedFormat.JSON)
    assert out == [
        (2, {"sku": "A"}),
        LineError(3, "JSON nested deeper than 32 levels"),
        LineError(4, "JSON nested deeper than 32 levels"),
        LineError(5, "duplicate key 'sku' in a JSON object"),
        (6, {"sku": "D"}),
    ]
    assert reader.complete


def test_json_array_elements_past_the_limit() -> None:
    big = b'{"sku":"' + b"x" * 200 + b'"}'
    reader = FeedReader(io.BytesIO(b"[" + big + b',{"sku":"A"}]'), FeedFormat.JSON, max_line_bytes=100)
    assert list(reader.records()) == [LineError(1, "element longer than 100 characters"), (1, {"sku": "A"})]
    endless = b'[{"sku":"A"},\n{"sku":"' + b"x" * 600_000
    reader = FeedReader(io.BytesIO(endless), FeedFormat.JSON, max_line_bytes=1000)
    out = list(reader.records())
    assert out[0] == (1, {"sku": "A"}) and out[1].line == 2 and not reader.complete
    assert "longer than 1000 characters; the rest of the array was not read" in out[1].reason
