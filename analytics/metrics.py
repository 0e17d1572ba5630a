"""Ranking quality at k, in plain Python (no Spark): what the holdout reports and the gate compares.

For one user, ``recommended`` is the ranked list and ``relevant`` the set of products the user really
took in the holdout. Averages run over users with at least one relevant item (the others say nothing
about a model).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import msgspec


class Quality(msgspec.Struct, frozen=True, kw_only=True):
    """Mean precision@k, recall@k and MAP@k over ``users``."""

    model: str
    k: int
    precision: float
    recall: float
    map: float
    users: int


def precision_at_k(recommended: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Hits in the top ``k`` divided by ``k`` (a short list is not rewarded for being short)."""
    wanted = set(relevant)
    return sum(1 for item in recommended[:k] if item in wanted) / k


def recall_at_k(recommended: Sequence[str], relevant: Iterable[str], k: int) -> float:
    wanted = set(relevant)
    if not wanted:
        return 0.0
    return sum(1 for item in recommended[:k] if item in wanted) / len(wanted)


def average_precision_at_k(recommended: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Mean of precision@i at each rank i <= k holding a hit, over min(k, |relevant|)."""
    wanted = set(relevant)
    if not wanted:
        return 0.0
    hits, total = 0, 0.0
    for rank, item in enumerate(recommended[:k], start=1):
        if item in wanted:
            hits += 1
            total += hits / rank
    return total / min(k, len(wanted))


def evaluate(
    model: str,
    recommendations: Mapping[str, Sequence[str]],
    truth: Mapping[str, Iterable[str]],
    k: int = 10,
) -> Quality:
    """Average the three metrics over every user of ``truth`` with something relevant; a user the model
    has no list for counts as all misses."""
    users = [user for user, items in truth.items() if set(items)]
    if not users:
        return Quality(model=model, k=k, precision=0.0, recall=0.0, map=0.0, users=0)
    p = r = m = 0.0
    for user in users:
        recs, relevant = recommendations.get(user, ()), set(truth[user])
        p += precision_at_k(recs, relevant, k)
        r += recall_at_k(recs, relevant, k)
        m += average_precision_at_k(recs, relevant, k)
    n = len(users)
    return Quality(model=model, k=k, precision=p / n, recall=r / n, map=m / n, users=n)


def beats(candidate: Quality, baseline: Quality) -> bool:
    """The publishing gate: strictly better precision@k and not worse MAP@k on the same users."""
    return candidate.users > 0 and candidate.precision > baseline.precision and candidate.map >= baseline.map
