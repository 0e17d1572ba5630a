"""Ranking metrics at k by hand: what the holdout reports and the publishing gate compares."""

from __future__ import annotations

import pytest

from analytics.metrics import Quality, average_precision_at_k, beats, evaluate, precision_at_k, recall_at_k


def test_precision_counts_hits_in_the_top_k_over_k() -> None:
    assert precision_at_k(["a", "b", "c", "d"], {"a", "c", "z"}, 2) == 0.5
    assert precision_at_k(["a"], {"a"}, 10) == 0.1  # a short list is not rewarded for being short
    assert precision_at_k([], {"a"}, 10) == 0.0


def test_recall_is_hits_over_relevant() -> None:
    assert recall_at_k(["a", "b", "c"], {"a", "c", "x", "y"}, 2) == 0.25
    assert recall_at_k(["a", "b", "c"], {"a", "c", "x", "y"}, 3) == 0.5
    assert recall_at_k(["a"], set(), 10) == 0.0


def test_average_precision_rewards_early_hits() -> None:
    # hits at ranks 1 and 3: (1/1 + 2/3) / min(k, |relevant|) = (1 + 2/3) / 2
    assert average_precision_at_k(["a", "b", "c"], {"a", "c"}, 10) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision_at_k(["b", "a", "c"], {"a", "c"}, 10) == pytest.approx((1 / 2 + 2 / 3) / 2)
    # more relevant items than k: normalised by k
    assert average_precision_at_k(["a", "b"], {"a", "b", "c", "d"}, 2) == pytest.approx(1.0)
    assert average_precision_at_k(["x", "y"], {"a"}, 2) == 0.0


def test_evaluate_averages_over_users_with_something_relevant() -> None:
    recs = {"u1": ["a", "b"], "u2": ["c", "d"]}
    truth = {"u1": {"a"}, "u2": {"x"}, "u3": set(), "u4": {"d"}}  # u3 says nothing; u4 has no list
    quality = evaluate("m", recs, truth, k=2)
    assert quality.users == 3
    assert quality.precision == pytest.approx((0.5 + 0 + 0) / 3)
    assert quality.recall == pytest.approx((1 + 0 + 0) / 3)
    assert quality.map == pytest.approx((1 + 0 + 0) / 3)


def test_evaluate_with_no_users_is_all_zero() -> None:
    assert evaluate("m", {"u": ["a"]}, {}, k=10) == Quality(
        model="m", k=10, precision=0.0, recall=0.0, map=0.0, users=0
    )


def test_the_gate_needs_strictly_better_precision_and_no_worse_map() -> None:
    base = Quality(model="popularity", k=10, precision=0.1, recall=0.2, map=0.1, users=50)
    better = Quality(model="als", k=10, precision=0.2, recall=0.3, map=0.15, users=50)
    tied = Quality(model="als", k=10, precision=0.1, recall=0.3, map=0.3, users=50)
    worse_map = Quality(model="als", k=10, precision=0.2, recall=0.3, map=0.05, users=50)
    assert beats(better, base)
    assert not beats(tied, base)
    assert not beats(worse_map, base)
    assert not beats(Quality(model="als", k=10, precision=0.0, recall=0, map=0, users=0), base)
