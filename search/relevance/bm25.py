"""Plain Okapi BM25 over product titles: the textbook baseline the storefront ranking is measured against.

Exactly Robertson/Sparck Jones with Lucene's non-negative IDF, no engine involved:

    score(d, q) = sum over distinct query terms t in d of
                  idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * |d| / avgdl))
    idf(t)      = ln(1 + (N - n_t + 0.5) / (n_t + 0.5))

Tokens are lowercased runs of letters and digits (no stemming, no stop words): what "plain" means here.
A document matches when it holds at least one query term; ties break on the product ref.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def tokens(text: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(text)]


class BM25:
    def __init__(self, titles: Iterable[tuple[str, str]], *, k1: float = 1.2, b: float = 0.75) -> None:
        """``titles``: (product ref, title) pairs."""
        self.k1, self.b = k1, b
        self._refs: list[str] = []
        self._lengths: list[int] = []
        self._postings: dict[str, list[tuple[int, int]]] = {}
        for ref, title in titles:
            doc = len(self._refs)
            words = tokens(title)
            self._refs.append(ref)
            self._lengths.append(len(words))
            for term, tf in Counter(words).items():
                self._postings.setdefault(term, []).append((doc, tf))
        n = len(self._refs)
        self._avgdl = (sum(self._lengths) / n) if n else 0.0
        self._idf = {t: math.log(1 + (n - len(p) + 0.5) / (len(p) + 0.5)) for t, p in self._postings.items()}

    def __len__(self) -> int:
        return len(self._refs)

    def search(self, query: str, k: int = 100) -> list[str]:
        """The refs of the top ``k`` titles for ``query``, best first."""
        scores: dict[int, float] = {}
        k1, b, avgdl = self.k1, self.b, self._avgdl or 1.0
        for term in dict.fromkeys(tokens(query)):
            idf = self._idf.get(term)
            if idf is None:
                continue
            for doc, tf in self._postings[term]:
                norm = tf + k1 * (1 - b + b * self._lengths[doc] / avgdl)
                scores[doc] = scores.get(doc, 0.0) + idf * tf * (k1 + 1) / norm
        top = sorted(scores.items(), key=lambda item: (-item[1], self._refs[item[0]]))[:k]
        return [self._refs[doc] for doc, _ in top]
