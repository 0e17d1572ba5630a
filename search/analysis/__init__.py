"""Text analysis shared by both search adapters: synonyms, query words, fuzziness, suggestion merging.

Pure functions only (no I/O except reading the packaged synonyms file), so both engines interpret a
query the same way and the rules are unit-tested once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

SYNONYMS_PATH = Path(__file__).with_name("synonyms.txt")

_WORD = re.compile(r"\w+", re.UNICODE)


def read_synonym_rules(path: Path | None = None) -> list[str]:
    """The Solr-format rules of the synonyms file, comments and blank lines removed.

    Elasticsearch gets them inline in the index settings (no server-side file to deploy).
    """
    text = (path or SYNONYMS_PATH).read_text(encoding="utf-8")
    rules = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            rules.append(line)
    return rules


def parse_synonyms(rules: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Map each phrase (lowercased) to the phrases it also finds.

    ``a, b, c`` makes every member find the others; ``a, b => c`` makes a and b find c.
    """
    table: dict[str, list[str]] = {}

    def add(source: str, target: str) -> None:
        if source != target and target not in table.setdefault(source, []):
            table[source].append(target)

    for rule in rules:
        if "=>" in rule:
            left, right = rule.split("=>", 1)
            sources = [_norm(x) for x in left.split(",") if x.strip()]
            targets = [_norm(x) for x in right.split(",") if x.strip()]
            for source in sources:
                for target in targets:
                    add(source, target)
        else:
            members = [_norm(x) for x in rule.split(",") if x.strip()]
            for source in members:
                for target in members:
                    add(source, target)
    return {key: tuple(value) for key, value in table.items()}


@lru_cache(maxsize=1)
def default_synonyms() -> dict[str, tuple[str, ...]]:
    return parse_synonyms(read_synonym_rules())


def _norm(phrase: str) -> str:
    return " ".join(phrase.lower().split())


def query_words(text: str, max_words: int = 16) -> list[str]:
    """The words of a user query, lowercased, at most ``max_words`` (long pastes stay cheap)."""
    return [w.lower() for w in _WORD.findall(text)][:max_words]


def auto_fuzziness(term: str) -> int:
    """Elasticsearch's ``fuzziness: AUTO``: 0 edits up to 2 chars, 1 up to 5, else 2."""
    n = len(term)
    if n <= 2:
        return 0
    return 1 if n <= 5 else 2


def minimum_should_match(n_clauses: int) -> int:
    """``2<75%``: up to two words all must match; longer queries tolerate a quarter missing."""
    if n_clauses <= 2:
        return n_clauses
    return max(1, math.floor(n_clauses * 0.75))


MINIMUM_SHOULD_MATCH = "2<75%"


def prefix_fuzziness(token: str) -> int:
    """Edits allowed in a prefix being typed: none up to 3 chars (too ambiguous), 1, then 2 from 8."""
    if len(token) <= 3:
        return 0
    return 1 if len(token) < 8 else 2


def merge_suggestions(
    brands: Sequence[str],
    categories: Sequence[str],
    titles: Sequence[str],
    limit: int,
    *,
    max_brands: int = 3,
    max_categories: int = 3,
) -> list[str]:
    """Brands first, then categories, then titles; duplicates (case-insensitive) dropped.

    A group that has fewer than its share leaves room for the others, so the list is full whenever
    enough completions exist.
    """
    out: list[str] = []
    seen: set[str] = set()

    def take(items: Iterable[str], cap: int) -> None:
        for item in items:
            if len(out) >= limit or cap <= 0:
                return
            key = item.casefold().strip()
            if key and key not in seen:
                seen.add(key)
                out.append(item.strip())
                cap -= 1

    take(brands, max_brands)
    take(categories, max_categories)
    take(titles, limit)
    take(brands, limit)
    take(categories, limit)
    return out[:limit]


def category_prefixes(path: Sequence[str], separator: str = ">") -> list[str]:
    """("Fashion", "Men", "Shirts") -> ["Fashion", "Fashion>Men", "Fashion>Men>Shirts"]."""
    parts = [p.strip() for p in path if p.strip()]
    return [separator.join(parts[: i + 1]) for i in range(len(parts))]
