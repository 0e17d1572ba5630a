"""Ranking metrics over graded judgments: NDCG@k (full and condensed), MRR and recall@k.

Conventions (stated because papers differ):

* gain of a grade ``g`` is ``2**g - 1``, discount ``log2(rank + 1)`` (rank from 1);
* the ideal ranking is every judged item of the query sorted by grade (so unjudged relevant items
  cannot exist: anything unjudged counts as grade 0);
* *full* NDCG scores the ranking as returned, unjudged items counting 0;
* *condensed* NDCG (Sakai 2007) first drops the unjudged items from the ranking, then scores it:
  it measures the order of what was judged and is robust to incomplete judgments;
* an item is *relevant* when its grade is > 0 (MRR, recall);
* queries without a relevant judged item are skipped by every metric (they have no ideal).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import msgspec

Judgments = dict[str, dict[str, int]]  # query -> product_ref -> grade


class Scores(msgspec.Struct, kw_only=True, frozen=True):
    """Mean metrics of one system over the queries it was judged on."""

    queries: int
    ndcg10: float
    ndcg10_condensed: float
    mrr: float
    recall100: float


def read_judgments(path: Path) -> Judgments:
    """``query, product_ref, grade`` CSV (a header row is recognised and skipped; extra columns ignored)."""
    judgments: Judgments = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            if len(row) < 3 or not row[0].strip() or row[2].strip().lower() == "grade":
                continue
            query, ref, grade = row[0].strip(), row[1].strip(), int(row[2])
            judgments.setdefault(query, {})[ref] = grade
    return judgments


def dcg(gains: Iterable[int]) -> float:
    return sum((2**g - 1) / math.log2(rank + 2) for rank, g in enumerate(gains))


def ndcg(ranking: Sequence[str], grades: Mapping[str, int], k: int = 10, *, condensed: bool = False) -> float:
    """NDCG@k of ``ranking`` (product refs, best first) against one query's judged ``grades``."""
    ideal = dcg(sorted(grades.values(), reverse=True)[:k])
    if ideal <= 0:
        return 0.0
    ranked = [ref for ref in ranking if ref in grades] if condensed else list(ranking)
    return dcg(grades.get(ref, 0) for ref in ranked[:k]) / ideal


def reciprocal_rank(ranking: Sequence[str], grades: Mapping[str, int]) -> float:
    for rank, ref in enumerate(ranking, start=1):
        if grades.get(ref, 0) > 0:
            return 1.0 / rank
    return 0.0


def recall(ranking: Sequence[str], grades: Mapping[str, int], k: int = 100) -> float:
    relevant = {ref for ref, g in grades.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def evaluate(rankings: Mapping[str, Sequence[str]], judgments: Judgments) -> Scores:
    """Mean metrics over the judged queries that have a relevant item (a missing ranking is empty)."""
    queries = [q for q, grades in judgments.items() if any(g > 0 for g in grades.values())]
    if not queries:
        return Scores(queries=0, ndcg10=0.0, ndcg10_condensed=0.0, mrr=0.0, recall100=0.0)
    n = len(queries)

    def mean(metric: object) -> float:
        return sum(metric(rankings.get(q, ()), judgments[q]) for q in queries) / n  # type: ignore[operator]

    return Scores(
        queries=n,
        ndcg10=mean(lambda r, g: ndcg(r, g, 10)),
        ndcg10_condensed=mean(lambda r, g: ndcg(r, g, 10, condensed=True)),
        mrr=mean(reciprocal_rank),
        recall100=mean(lambda r, g: recall(r, g, 100)),
    )
