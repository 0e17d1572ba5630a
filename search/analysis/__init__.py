"""Text analysis shared by both search adapters: synonyms, query words, fuzziness, suggestion merging.

Pure functions only (no I/O except reading the packaged synonyms file), so both engines interpret a
query the same way and the rules are unit-tested once.
"""

from __future__ import annotations

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


def query_units(text: str, synonyms: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """The query's units, as typed (lowercased): its words, except that two words forming a synonym
    phrase ("t shirt") stay one unit. Both adapters score a query unit by unit."""
    table = default_synonyms() if synonyms is None else synonyms
    typed = query_words(text)
    found: list[str] = []
    i = 0
    while i < len(typed):
        pair = " ".join(typed[i : i + 2]) if i + 1 < len(typed) else None
        if pair and pair in table:
            found.append(pair)
            i += 2
        else:
            found.append(typed[i])
            i += 1
    return found


def typo_edits(word: str) -> int:
    """Edits a typed word may be from a catalog word: none up to 2 letters, 1 from 3, 2 from 5 (a swap
    of adjacent letters is one edit). Five, not Elasticsearch's AUTO six: a five-letter word with a
    swap and a slip ("sguar" -> "sugar" is one swap) is common, and the nearest words win anyway."""
    n = len(word)
    if n <= 2:
        return 0
    return 1 if n < 5 else 2


def auto_fuzziness(term: str) -> int:
    """Elasticsearch's ``fuzziness: AUTO``: 0 edits up to 2 chars, 1 up to 5, else 2."""
    n = len(term)
    if n <= 2:
        return 0
    return 1 if n <= 5 else 2


def minimum_should_match(n_clauses: int) -> int:
    """Query units that must match: one up to four units, a quarter of longer queries (long pastes stay
    selective). Ranking, not matching, puts products with every word first (scores add up per unit, and
    ``COORDINATION`` rewards having them all): requiring every word dropped relevant products that lack
    one (a "shampoo conditioner" product titled "Anti-Dandruff Shampoo"), and plain BM25, which requires
    none, ranked better than that on judged queries (search/relevance/judgments)."""
    if n_clauses <= 4:
        return min(n_clauses, 1)
    return n_clauses // 4


# The ranking features both adapters share (field boosts, the title phrase, typo weights, coordination).
FIELD_BOOSTS: dict[str, float] = {"title": 3.0, "brand": 2.0, "description": 1.0, "category": 1.0}
PHRASE_BOOST = 2.0  # the query's words as a title phrase (slop 1)
PHRASE_SLOP = 1
TYPO_WEIGHTS = {1: 0.6, 2: 0.35}  # a catalog word 1 or 2 edits from the typed one, vs 1.0 exact
COORDINATION = 10.0  # added when every unit matches: a product with all the words before one with some


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


def _osa(a: str, b: str) -> int:
    """Edit distance with adjacent swaps counting one (optimal string alignment)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], prev2[j - 2] + 1)
        prev2, prev = prev, row
    return prev[-1]


def prefix_closeness(typed: str, completion: str) -> tuple[int, int]:
    """How well a completion fits a mistyped prefix (smaller is closer): the fewest edits from ``typed``
    to a prefix of one of its words, then the longer exact start. Shoppers rarely get the first letters
    wrong, so for ``shmp`` a "Shampoo" (1 edit, "sh" right) comes before "Tata Sampann" (1 edit, "s")."""
    word = typed.lower()
    best = (len(word) + 1, 0)
    for candidate in query_words(completion):
        lengths = range(max(1, len(word) - 2), len(word) + 3)
        edits = min(_osa(word, candidate[:n]) for n in lengths)
        start = 0
        while start < min(len(word), len(candidate)) and word[start] == candidate[start]:
            start += 1
        best = min(best, (edits, -start))
    return best


def rank_fuzzy_completions(typed: str, completions: Sequence[str]) -> list[str]:
    """Typo-tolerant completions of every kind (titles, brands, categories) in one list, closest to the
    last typed word first (stable: the engine's order within a tie). A fuzzy brand no longer comes before
    the titles just because brands come first among exact completions."""
    last = query_words(typed)[-1:] or [""]
    return sorted(completions, key=lambda c: prefix_closeness(last[0], c))


def category_prefixes(path: Sequence[str], separator: str = ">") -> list[str]:
    """("Fashion", "Men", "Shirts") -> ["Fashion", "Fashion>Men", "Fashion>Men>Shirts"]."""
    parts = [p.strip() for p in path if p.strip()]
    return [separator.join(parts[: i + 1]) for i in range(len(parts))]
