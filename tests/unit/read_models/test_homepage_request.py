"""The homepage route's own parsing (it skips Litestar's, see read_models/homepage/api.py)."""

from __future__ import annotations

import pytest

from read_models.homepage.api import etag_matches, parse_query
from read_models.homepage.model import InvalidHomepageRequest, Platform


def test_defaults_and_values() -> None:
    assert parse_query(b"") == ("", Platform.WEB)
    assert parse_query(b"region=IN-KA&platform=app") == ("IN-KA", Platform.APP)
    assert parse_query(b"region=&platform=web&other=1") == ("", Platform.WEB)
    assert parse_query(b"platform=web&platform=app") == ("", Platform.APP)  # the last one, like Litestar


@pytest.mark.parametrize(
    "query", [b"platform=tv", b"platform=", b"region=no%20spaces", b"region=" + b"x" * 33, b"region=-x"]
)
def test_bad_values_are_refused(query: bytes) -> None:
    with pytest.raises(InvalidHomepageRequest):
        parse_query(query)


def test_if_none_match_is_a_weak_comparison_over_a_list() -> None:
    tag = 'W/"abc"'
    assert etag_matches('W/"abc"', tag) and etag_matches('"abc"', tag)
    assert etag_matches('"x", W/"abc"', tag) and etag_matches("*", tag)
    assert not etag_matches('"abcd"', tag) and not etag_matches(None, tag) and not etag_matches("", tag)
