"""Pure rules of the recommendations read model: id validation, newest-per-entity selection, and which
events become which store entries."""

from __future__ import annotations

import pytest

from kernel.contracts.events import (
    PopularProductsComputed,
    ProductViewed,
    RecommendationsComputed,
    RelatedProductsComputed,
    new_event,
)
from read_models.recommendations import (
    InvalidUserId,
    PopularProducts,
    Recommendations,
    RelatedProducts,
    is_current,
    is_valid_product_id,
    newest_per_user,
    validate_user_id,
)
from read_models.recommendations_projector import recommendations_from_events
from read_models.regions import InvalidRegion, validate_region


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


def test_a_user_list_is_current_unless_a_later_run_published_popularity() -> None:
    """Every run publishes the every-region popularity list; per-user lists only when ALS won."""

    def everywhere(revision: int) -> PopularProducts:
        return PopularProducts(region="", product_ids=("p",), model="popularity", revision=revision)

    own = entry("u", 5, "mine")
    assert is_current(own, None)  # no popularity yet (or a producer that publishes none)
    assert is_current(own, everywhere(4))  # an earlier run's popularity
    assert is_current(own, everywhere(5))  # the same run: ALS won and both were published
    assert not is_current(own, everywhere(6))  # a later run did not publish this list: superseded


def test_events_become_entries_and_unusable_ones_are_counted() -> None:
    good = new_event(
        RecommendationsComputed(user_id="u1", product_ids=("p",)), key="u1", revision=4, producer="t"
    )
    bad = new_event(
        RecommendationsComputed(user_id="no spaces", product_ids=()), key="x", revision=1, producer="t"
    )
    other = new_event(ProductViewed(product_id="p"), key="p", revision=1, producer="t")
    batch = recommendations_from_events([good, bad, other])
    assert batch.rejected == 1 and batch.related == [] and batch.popular == []
    assert batch.users == [
        Recommendations(
            user_id="u1", product_ids=("p",), model="als", revision=4, generated_at=good.occurred_at
        )
    ]


def test_related_and_popular_events_keep_the_newest_per_product_and_region() -> None:
    def related(product_id: str, revision: int, *ids: str) -> object:
        payload = RelatedProductsComputed(product_id=product_id, product_ids=ids)
        return new_event(payload, key=f"related:{product_id}", revision=revision, producer="t")

    def popular(region: str, revision: int, *ids: str) -> object:
        payload = PopularProductsComputed(region=region, product_ids=ids)
        return new_event(payload, key=f"popular:{region}", revision=revision, producer="t")

    events = [
        related("shop:1", 2, "shop:2", "shop:3"),
        related("shop:1", 1, "old"),
        related(" ", 1, "x"),  # no usable product id
        popular("", 3, "a"),
        popular("south", 3, "b"),
        popular("", 4, "c"),
        popular("bad region", 9, "x"),
    ]
    batch = recommendations_from_events(events)  # type: ignore[arg-type]
    assert batch.rejected == 2 and batch.users == []
    assert [(r.product_id, r.product_ids, r.revision, r.model) for r in batch.related] == [
        ("shop:1", ("shop:2", "shop:3"), 2, "bought_together")
    ]
    assert sorted((p.region, p.product_ids, p.revision, p.model) for p in batch.popular) == [
        ("", ("c",), 4, "popularity"),
        ("south", ("b",), 3, "popularity"),
    ]
    assert all(isinstance(r, RelatedProducts) for r in batch.related)
    assert all(isinstance(p, PopularProducts) for p in batch.popular)


@pytest.mark.parametrize("product_id", ["shop:1", "bigbasket:123", "a b/c", "x" * 200])
def test_valid_product_ids(product_id: str) -> None:
    assert is_valid_product_id(product_id)


@pytest.mark.parametrize("product_id", ["", " ", "x" * 201, "a\nb"])
def test_invalid_product_ids(product_id: str) -> None:
    assert not is_valid_product_id(product_id)


@pytest.mark.parametrize("region", ["", "south", "IN-KA", "zone_7", "eu.west:1", "r" * 64])
def test_valid_regions(region: str) -> None:
    assert validate_region(region) == region


@pytest.mark.parametrize("region", [" ", "-a", "a b", "r" * 65, "<x>", "é"])
def test_invalid_regions(region: str) -> None:
    with pytest.raises(InvalidRegion):
        validate_region(region)
