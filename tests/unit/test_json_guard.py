"""kernel.http.json_guard: nesting and repeated keys found exactly, valid bodies never refused."""

from __future__ import annotations

import json
import random
import string

import msgspec
import pytest

from kernel.http.json_guard import (
    MAX_DEPTH,
    JsonShapeError,
    decode_json,
    first_repeated_key,
    is_json_media_type,
)


def nested(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b"[1]" + b"}" * (depth - 1)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100, 1000, 100_000])
def test_too_deep_is_refused_whatever_the_depth(depth: int) -> None:
    with pytest.raises(JsonShapeError, match="nested deeper than 32"):
        decode_json(b"[" * depth + b"]" * depth)
    with pytest.raises(JsonShapeError, match="nested deeper"):
        decode_json(nested(depth))


def test_the_limit_itself_is_fine() -> None:
    assert decode_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    decode_json(nested(MAX_DEPTH))
    # brackets inside strings are not nesting
    decode_json(json.dumps({"t": "[" * 100, "u": "{" * 100}).encode())


@pytest.mark.parametrize(
    "body, key",
    [
        (b'{"sku":"a","sku":"b"}', "sku"),
        (b'{"a":1, "b":2 ,"a" :3}', "a"),
        (b'{"x":{"k":1,"k":2}}', "k"),
        (b'[{"k":1},{"k":2},{"z":[{"q":1,"q":1}]}]', "q"),
        (b'{"a":"1:2","a":"x"}', "a"),  # a colon inside a string cannot hide it
        (b'{"a":1,"\\u0061":2}', "a"),  # the same key, escaped
        (b'{"s":"\\u003a","s":1}', "s"),  # an escaped colon cannot hide it either
        (b'{"":1,"":2}', ""),
    ],
)
def test_repeated_keys_are_refused_and_named(body: bytes, key: str) -> None:
    with pytest.raises(JsonShapeError) as info:
        decode_json(body)
    assert info.value.reason == f"duplicate key {key!r} in a JSON object"


@pytest.mark.parametrize(
    "body",
    [
        b'{"sku":"demo:SYN-000010","quantity":1,"customer_id":"c:1","hold_seconds":600}',
        b'{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}',  # the same key in different objects
        b'{"url":"https://x.test/a:b","t":"\\"quoted: yes\\"","u":"\\u00e9:"}',
        b'{"a:b":1,"a":2}',
        b'"just: a string"',
        b"[]",
        b"12",
    ],
)
def test_valid_bodies_pass(body: bytes) -> None:
    assert decode_json(body) == msgspec.json.decode(body)


def test_random_objects_agree_with_the_stdlib() -> None:
    rng = random.Random(13)
    alphabet = string.ascii_letters[:4] + ':"\\{}[] '

    def value(depth: int) -> object:
        kind = rng.random()
        if depth > 3 or kind < 0.4:
            return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
        if kind < 0.7:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 3))): value(depth + 1)
            for _ in range(3)
        }

    for _ in range(500):
        data = value(0)
        text = json.dumps(data, ensure_ascii=rng.random() < 0.5)
        assert decode_json(text.encode()) == data
        if isinstance(data, dict) and data:
            first = next(iter(data))
            repeated = text[:-1] + ", " + json.dumps(first) + ": 0}"
            with pytest.raises(JsonShapeError, match="duplicate key"):
                decode_json(repeated.encode())


def test_first_repeated_key_ignores_other_objects() -> None:
    assert first_repeated_key(b'{"a":{"b":1},"b":2}') is None
    assert first_repeated_key(b'{"a":{"b":1},"c":2,"a":3}') == "a"


def test_json_media_types() -> None:
    for ok in ("application/json", "Application/JSON; charset=utf-8", "application/merge-patch+json"):
        assert is_json_media_type(ok)
    for bad in (
        None,
        "",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "text/json",
    ):
        assert not is_json_media_type(bad)
