"""The metric math of ``emporium eval relevance`` (search.relevance), against hand-computed values."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from search.relevance.bm25 import BM25, tokens
from search.relevance.metrics import dcg, evaluate, ndcg, read_judgments, recall, reciprocal_rank

GRADES = {"a": 2, "b": 1, "c": 0}


def test_dcg_uses_exponential_gain_and_log2_discount() -> None:
    assert dcg([2, 1]) == pytest.approx(3 / math.log2(2) + 1 / math.log2(3))


def test_ndcg_is_one_for_the_ideal_order_and_counts_unjudged_as_zero() -> None:
    assert ndcg(["a", "b", "c"], GRADES) == pytest.approx(1.0)
    ideal = 3 + 1 / math.log2(3)
    # full: the unjudged "x" at rank 1 pushes everything down
    assert ndcg(["x", "a", "b"], GRADES) == pytest.approx((3 / math.log2(3) + 1 / 2) / ideal)
    # condensed: unjudged items are removed before scoring
    assert ndcg(["x", "a", "b"], GRADES, condensed=True) == pytest.approx(1.0)
    assert ndcg(["b", "a"], GRADES) == pytest.approx((1 + 3 / math.log2(3)) / ideal)


def test_ndcg_cuts_at_k_and_is_zero_without_relevant_items() -> None:
    assert ndcg(["c", "b", "a"], GRADES, k=1) == 0.0
    assert ndcg(["a"], {"a": 0}) == 0.0


def test_reciprocal_rank_and_recall() -> None:
    assert reciprocal_rank(["x", "c", "b", "a"], GRADES) == pytest.approx(1 / 3)
    assert reciprocal_rank(["x"], GRADES) == 0.0
    assert recall(["a", "x"], GRADES) == pytest.approx(0.5)
    assert recall(["x", "a"], GRADES, k=1) == 0.0


def test_evaluate_averages_over_queries_with_a_relevant_item() -> None:
    judgments = {"q1": GRADES, "q2": {"d": 1}, "no relevant": {"e": 0}}
    scores = evaluate({"q1": ["a", "b"], "q2": ["x", "d"]}, judgments)
    assert scores.queries == 2
    assert scores.mrr == pytest.approx((1 + 1 / 2) / 2)
    assert scores.recall100 == pytest.approx(1.0)
    assert scores.ndcg10_condensed == pytest.approx(1.0)
    assert scores.ndcg10 == pytest.approx((1 + (1 / math.log2(3))) / 2)


def test_read_judgments_skips_the_header_and_ignores_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "j.csv"
    path.write_text("query,product_ref,grade,clean_query\nred shoe,1,2,red shoe\nred shoe,2,0\n")
    assert read_judgments(path) == {"red shoe": {"1": 2, "2": 0}}


def test_bm25_matches_the_okapi_formula() -> None:
    bm25 = BM25([("1", "red shoe"), ("2", "blue shoe shoe"), ("3", "red red hat")], k1=1.2, b=0.75)
    assert tokens("Red-Shoe's 2x") == ["red", "shoe", "s", "2x"]
    avgdl = 8 / 3

    def term(tf: int, length: int, n: int) -> float:
        idf = math.log(1 + (3 - n + 0.5) / (n + 0.5))
        return idf * tf * 2.2 / (tf + 1.2 * (1 - 0.75 + 0.75 * length / avgdl))

    scores = {"1": term(1, 2, 2) + term(1, 2, 2), "2": term(2, 3, 2), "3": term(2, 3, 2)}
    expected = sorted(scores, key=lambda ref: (-scores[ref], ref))
    assert bm25.search("red shoe") == expected
    assert bm25.search("green") == []
