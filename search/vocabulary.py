"""Typo expansion against the index's own vocabulary: once per query word, not per field and pass.

What a typed word is compared with: the catalog's words as typed (the unstemmed ``words`` field), not the
stemmed terms, because a typo sits near the word and may be far from its stem (``cooikng`` is one swap
from ``cooking`` but three edits from ``cook``). The words found are then analysed (stemmed), and those
terms are matched on the stemmed text fields (``Vocabulary.expansions``). Rules, chosen for precision:

* a word the catalog knows (as typed, or by its stem) is not expanded;
* one edit for words of 3+ letters, two for 5+ letters (``search.analysis.typo_edits``); a swap of
  adjacent letters is one edit;
* the nearest words win: two-edit words are used only when no word is one edit away (``sneekers`` finds
  ``sneakers``, not ``speakers``), and at most ``MAX_EXPANSIONS`` of them, the most frequent first;
* a near word much rarer than the most frequent one (under ``MIN_SHARE`` of its document frequency) is
  dropped: the likelier intended word is the common one, and a rare one would outscore it on idf
  (``jeens`` means ``jeans``, not a product named "Teens").

A Tantivy ``fuzzy_term_query`` builds a Levenshtein automaton for its word every time a searcher weighs
it, and a storefront search weighs four text fields twice (hits, then facets). Here the words within the
distance are found once, in a one-segment in-memory index of every term of the text fields (small: a
catalog has far fewer distinct words than products), and the search uses plain term queries on them.
Scores are unchanged: a fuzzy query is constant-score, so a constant-score disjunction of exactly the
terms it would match is the same query.

The vocabulary must cover the searcher it serves (a term missing from it would lose a typo match), so it
is tied to the index content: ``VocabularyTracker`` watches the index's ``meta.json`` (rewritten by
every commit and merge) and, when it changes, re-checks a content fingerprint and rebuilds in a
background thread; until then, ``current()`` returns None and the caller uses Tantivy's own fuzzy
queries. Terms of deleted documents may linger (as they do in Tantivy's term dictionaries); they match
nothing.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog
import tantivy

from search.analysis import typo_edits

log = structlog.get_logger(__name__)

MAX_VARIANTS = 1_000  # more terms than any word has within two edits in a real catalog
MAX_CACHED_WORDS = 50_000
MAX_EXPANSIONS = 8  # catalog words a typo is expanded to (the most frequent of the nearest)
MIN_SHARE = 0.1  # of the most frequent nearest word's document frequency, for another to be kept

Expansion = tuple[str, int, int]  # (analysed term, field mask, edits from the typed word)


def _vocabulary_schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("term", tokenizer_name="raw")
    sb.add_integer_field("id", fast=True)
    return sb.build()


_SCHEMA = _vocabulary_schema()


class Vocabulary:
    """Every term of some text fields, each with the bit mask of the fields holding it.

    ``variants`` runs Tantivy's own automaton (same distance and transposition rule as
    ``fuzzy_term_query``) once over all terms and memoizes the answer per (word, distance).
    """

    def __init__(
        self,
        masks: dict[str, int],
        fingerprint: tuple[float, ...] = (),
        *,
        words: dict[str, int] | None = None,
        stem: Callable[[str], list[str]] | None = None,
    ) -> None:
        """``masks``: analysed term -> field mask; ``words``: unstemmed word -> document frequency, with
        ``stem`` the analyser from a word to its terms (without them, the terms are their own words)."""
        self.fingerprint = fingerprint
        self._stems = masks
        self._stem = stem or (lambda word: [word])
        self._df = words if words is not None else dict.fromkeys(masks, 1)
        self._terms = list(self._df)
        self._masks = [masks.get(t, 0) for t in self._terms]
        self._expanded: dict[str, tuple[Expansion, ...]] = {}
        self._index = tantivy.Index(_SCHEMA)
        writer = self._index.writer(heap_size=15_000_000, num_threads=1)
        for i, term in enumerate(self._terms):
            writer.add_document(tantivy.Document(term=term, id=i))
        writer.commit()
        writer.wait_merging_threads()
        self._index.reload()
        self._searcher = self._index.searcher()
        self._cache: dict[tuple[str, int], tuple[tuple[str, int], ...]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._terms)

    def variants(self, word: str, distance: int) -> tuple[tuple[str, int], ...]:
        """(term, field mask) of every term within ``distance`` edits of ``word`` (itself included if
        indexed); a transposition counts as one edit."""
        key = (word, distance)
        found = self._cache.get(key)
        if found is not None:
            return found
        query = tantivy.Query.fuzzy_term_query(_SCHEMA, "term", word, distance=distance)
        hits = self._searcher.search(query, limit=MAX_VARIANTS, count=False).hits
        ids = self._searcher.fast_field_values("id", [address for _, address in hits])
        found = tuple(sorted((self._terms[int(i)], self._masks[int(i)]) for i in ids if i is not None))
        with self._lock:
            if len(self._cache) >= MAX_CACHED_WORDS:
                self._cache.clear()
            self._cache[key] = found
        return found

    def known(self, word: str) -> bool:
        """The catalog has the word as typed, or every term it analyses to."""
        if word in self._df:
            return True
        terms = self._stem(word)
        return bool(terms) and all(t in self._stems for t in terms)

    def expansions(self, word: str) -> tuple[Expansion, ...]:
        """The analysed terms of the catalog words nearest to a typed (folded) ``word``, with the fields
        holding them and their distance; () when the word is known or nothing is near (module rules)."""
        found = self._expanded.get(word)
        if found is not None:
            return found
        found = () if self.known(word) else self._nearest(word)
        with self._lock:
            if len(self._expanded) >= MAX_CACHED_WORDS:
                self._expanded.clear()
            self._expanded[word] = found
        return found

    def _nearest(self, word: str) -> tuple[Expansion, ...]:
        for distance in range(1, typo_edits(word) + 1):
            near = [w for w, _ in self.variants(word, distance) if w != word]
            if not near:
                continue
            near.sort(key=lambda w: (-self._df.get(w, 0), w))
            floor = self._df.get(near[0], 0) * MIN_SHARE
            out: dict[str, Expansion] = {}
            for candidate in near[:MAX_EXPANSIONS]:
                if self._df.get(candidate, 0) < floor:
                    break
                for term in self._stem(candidate)[:1]:
                    mask = self._stems.get(term, 0)
                    if mask and term not in out:
                        out[term] = (term, mask, distance)
            return tuple(out.values())
        return ()

    def correction(self, word: str) -> str | None:
        """ "Did you mean" for one typed (folded) word: None when the catalog knows it; else the most
        frequent nearest catalog word (up to two edits from four letters, one less below), else the word
        split into two known words (``coconutoil`` -> ``coconut oil``), else None."""
        if len(word) < 3 or self.known(word):
            return None
        for distance in range(1, (2 if len(word) >= 4 else 1) + 1):
            near = [w for w, _ in self.variants(word, distance) if w != word]
            if near:
                return max(near, key=lambda w: (self._df.get(w, 0), w))
        splits = [
            (min(self._df.get(word[:i], 0), self._df.get(word[i:], 0)), f"{word[:i]} {word[i:]}")
            for i in range(2, len(word) - 1)
        ]
        best = max(splits, default=(0, ""))
        return best[1] if best[0] > 0 else None


def read_vocabulary(
    searcher: tantivy.Searcher,
    fields: Sequence[str],
    fingerprint: tuple[float, ...],
    *,
    words_field: str | None = None,
    stem: Callable[[str], list[str]] | None = None,
) -> Vocabulary:
    """The vocabulary of ``fields`` (bit i = ``fields[i]``) as ``searcher`` sees them, and of the
    unstemmed ``words_field`` when given."""
    masks: dict[str, int] = {}
    for bit, field in enumerate(fields):
        flag = 1 << bit
        for term, _ in searcher.terms_with_prefix(field, ""):
            masks[term] = masks.get(term, 0) | flag
    words = None
    if words_field is not None:
        words = {word: int(df) for word, df in searcher.terms_with_prefix(words_field, "")}
    return Vocabulary(masks, fingerprint, words=words, stem=stem)


def content_fingerprint(searcher: tantivy.Searcher) -> tuple[float, ...]:
    """(live documents, sum of their revisions): every write that changes a document's text stores a
    strictly newer revision (the index's versioning rule), so the sum moves; stock-flag updates keep the
    revision and the text, and merges keep both, so neither forces a rebuild."""
    result = searcher.aggregate(
        tantivy.Query.all_query(),
        {"n": {"value_count": {"field": "revision"}}, "s": {"sum": {"field": "revision"}}},
    )
    return (float(result["n"]["value"] or 0), float(result["s"]["value"] or 0))


class VocabularyTracker:
    """The vocabulary of one index directory, kept in step with its content.

    ``current()`` costs one ``stat`` of ``meta.json``; a change starts one background refresh (single
    flight) that reloads the reader, so the vocabulary it builds covers at least the commit that changed
    the file, and every searcher taken before that.
    """

    def __init__(
        self,
        directory: Path,
        fields: Sequence[str],
        searcher: Callable[[], tantivy.Searcher],
        reload: Callable[[], None],
        *,
        min_rebuild_s: float = 2.0,
        words_field: str | None = None,
        stem: Callable[[str], list[str]] | None = None,
    ) -> None:
        self._meta = directory / "meta.json"
        self._fields = tuple(fields)
        self._words_field = words_field
        self._stem = stem
        self._searcher = searcher
        self._reload = reload
        self._vocabulary: Vocabulary | None = None
        self._key: tuple[int, int, int] | None = None  # meta.json identity the vocabulary is valid for
        self._refreshing = False
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._built_at = -math.inf
        self.min_rebuild_s = min_rebuild_s
        self.builds = 0

    def _meta_key(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self._meta)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def current(self) -> Vocabulary | None:
        """The vocabulary if it covers the index as it is now, else None (and a refresh is started)."""
        key = self._meta_key()
        vocabulary = self._vocabulary
        if key is not None and key == self._key:
            return vocabulary
        self._start_refresh()
        return None

    def serving(self) -> Vocabulary | None:
        """The vocabulary searches use: the current one; while it is being rebuilt after a change, the
        previous one (a word added since then is matched exactly but not typo-expanded for those seconds);
        the first time, one built now, so every search of an index sees the same typo rules."""
        current = self.current()
        if current is not None:
            return current
        if self._vocabulary is None:
            self.refresh()
        return self._vocabulary

    def refresh(self) -> None:
        """Bring the vocabulary up to date now (in the calling thread; one refresh at a time).

        A rebuild waits until ``min_rebuild_s`` after the previous one: while a catalog is being
        imported the index changes with every commit, and rebuilding each time would keep a core busy;
        meanwhile searches use fuzzy queries (correct, only slower).
        """
        with self._refresh_lock:
            while True:
                key = self._meta_key()
                if key is None:
                    return
                self._reload()
                searcher = self._searcher()
                fingerprint = content_fingerprint(searcher)
                vocabulary = self._vocabulary
                if vocabulary is None or vocabulary.fingerprint != fingerprint:
                    wait = self._built_at + self.min_rebuild_s - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                        continue  # the index may have changed again meanwhile
                    started = time.perf_counter()
                    vocabulary = read_vocabulary(
                        searcher, self._fields, fingerprint, words_field=self._words_field, stem=self._stem
                    )
                    self._built_at = time.monotonic()
                    self.builds += 1
                    ms = round((time.perf_counter() - started) * 1000)
                    log.debug("search vocabulary built", terms=len(vocabulary), ms=ms)
                with self._lock:
                    self._vocabulary, self._key = vocabulary, key
                return

    def _start_refresh(self) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True
        threading.Thread(target=self._run_refresh, name="search-vocabulary", daemon=True).start()

    def _run_refresh(self) -> None:
        try:
            self.refresh()
        except Exception as exc:  # the index was closed or swapped meanwhile: fuzzy queries still work
            log.warning("search vocabulary refresh failed", error=repr(exc))
        finally:
            with self._lock:
                self._refreshing = False
