"""Pure rules of the recommendations read model: user-id validation and newest-per-user selection."""

from __future__ import annotations

import pytest

from kernel.contracts.events import ProductViewed, RecommendationsComputed, new_event
from read_models.recommendations import (
    InvalidUserId,
    Recommendations,
    newest_per_user,
    validate_user_id,
)
from read_models.recommendations_projector import recommendations_from_events


@pytest.mark.parametrize("user_id", ["42", "u-1", "a.b@shop.example", "inst:206209", "x" * 128, "A+b_c"])
def test_valid_user_ids(user_id: str) -> None:
    assert validate_user_id(user_id) == user_id


@pytest.mark.parametrize("user_id", ["", "x" * 129, "-a", "a b", "a/b", "<script>", "é", "a\n"])
def test_invalid_user_ids(user_id: str) -> None:
    with pytest.raises(InvalidUserId):
        validate_user_id(user_id)


def entry(user_id: str, revision: int, tag: str) -> Recommendations:
    return Recommendations(user_id=user_id, product_ids=(tag,), model="als", revision=revision)


def test_newest_per_user_keeps_the_highest_revision_and_the_first_on_ties() -> None:
    picked = newest_per_user(
        [
            entry("a", 1, "a1"),
            entry("b", 2, "b2"),
            entry("a", 3, "a3"),
            entry("a", 2, "a2"),
            entry("b", 2, "x"),
        ]
    )
    assert {e.user_id: e.product_ids for e in picked} == {"a": ("a3",), "b": ("b2",)}


def test_events_become_entries_and_unusable_ones_are_counted() -> None:
    good = new_event(
        RecommendationsComputed(user_id="u1", product_ids=("p",)), key="u1", revision=4, producer="t"
    )
    bad = new_event(
        RecommendationsComputed(user_id="no spaces", product_ids=()), key="x", revision=1, producer="t"
    )
    other = new_event(ProductViewed(product_id="p"), key="p", revision=1, producer="t")
    entries, rejected = recommendations_from_events([good, bad, other])
    assert rejected == 1
    assert entries == [
        Recommendations(
            user_id="u1", product_ids=("p",), model="als", revision=4, generated_at=good.occurred_at
        )
    ]
