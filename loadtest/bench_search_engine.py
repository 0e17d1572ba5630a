"""In-process search latency of the Tantivy adapter on the real catalogs (~40k products).

    python -m loadtest.bench_search_engine [--runs 3] [--queries 400] [--limit N]

Indexes bigbasket + myntra (``loadtest.bench_projection.load_documents``) through the adapter, then times
``await index.search(query)`` for a realistic storefront mix, the way ``SearchService`` calls it (in-stock
filter on, ``size + 5`` hits, facets and highlights on the first page):

* text queries from the real product names (1-3 words), 20% with a typo;
* filters: brand, category (one or two levels), price range, rating, delivery warehouses;
* sorts: relevance, price asc/desc, rating, newest; deeper pages by offset and by ``search_after``.

Each run times every query of the mix once (after one warm-up pass) in two modes, and prints p50, p99 and
CPU per search (``time.process_time``: all threads, insensitive to other load on the machine):

* ``vocabulary``: what the adapter does (typo variants looked up once per word in the index vocabulary,
  ``search.vocabulary``, then plain term queries);
* ``fuzzy``: the same queries with Tantivy ``fuzzy_term_query`` per field and per pass (what the adapter
  does while its vocabulary is being rebuilt, and did before it had one): the same-run "before".

Same-run baseline: a plain Tantivy term query (top 25 of one title word, documents loaded, no facets)
on the same index. The summary is the median over runs, and the ratio to the baseline's.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from decimal import Decimal
from typing import Any

import msgspec
import tantivy

import search.tantivy.reads as tantivy_reads
from loadtest.bench_projection import load_documents
from loadtest.queries import load_corpus, typo
from search.port import SearchDocument, SearchQuery, Sort
from search.tantivy import TantivySearchIndex
from search.tantivy.schema import SCHEMA, analyze

PAGE = 20
FETCH = PAGE + 5  # what SearchService asks for: the page, the out-of-stock margin and one more


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def query_mix(docs: list[SearchDocument], n: int, seed: int = 11) -> list[SearchQuery]:
    """A deterministic storefront mix (see the module docstring)."""
    rng = random.Random(seed)
    corpus = load_corpus()
    brands = [b for b, _ in _most_common(d.brand for d in docs if d.brand)[:200]]
    paths = sorted({d.category_path[:2] for d in docs if len(d.category_path) >= 2})
    sorts = [Sort.PRICE_ASC, Sort.PRICE_DESC, Sort.RATING, Sort.NEWEST]
    mix: list[SearchQuery] = []
    for i in range(n):
        words = rng.choice(corpus.queries).split()
        if rng.random() < 0.2:
            j = rng.randrange(len(words))
            words[j] = typo(words[j], rng)
        base = SearchQuery(text=" ".join(words), in_stock_only=True, limit=FETCH)
        kind = i % 10
        if kind == 0:  # brand filter + text
            base = msgspec.structs.replace(base, brands=(rng.choice(brands),))
        elif kind == 1:  # browse a category, sorted
            path = rng.choice(paths)
            base = msgspec.structs.replace(
                base, text="", category=path[: rng.choice((1, 2))], sort=rng.choice(sorts)
            )
        elif kind == 2:  # text + price range
            low = rng.choice((0, 100, 200, 500))
            base = msgspec.structs.replace(base, price_min=Decimal(low), price_max=Decimal(low * 3 + 300))
        elif kind == 3:  # text + sort
            base = msgspec.structs.replace(base, sort=rng.choice(sorts))
        elif kind == 4:  # page 2 or 3 by offset (no facets: the service asks them on page 1 only)
            base = msgspec.structs.replace(base, offset=PAGE * rng.choice((1, 2)), with_facets=False)
        elif kind == 5:  # rating + delivery filter
            base = msgspec.structs.replace(base, rating_min=3.5, warehouses=("WH-1", "WH-2"))
        elif kind == 6:  # browse everything in a top category by popularity
            base = msgspec.structs.replace(base, text="", category=rng.choice(paths)[:1])
        mix.append(base)
    return mix


def _most_common(values: Any) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return sorted(counts.items(), key=lambda kv: -kv[1])


async def with_cursors(index: Any, mix: list[SearchQuery]) -> list[SearchQuery]:
    """Every 10th query (kind 7) becomes the next page after its first page's last hit (a cursor)."""
    out = []
    for i, query in enumerate(mix):
        if i % 10 == 7:
            first = await index.search(msgspec.structs.replace(query, with_facets=False))
            if first.hits:
                query = msgspec.structs.replace(
                    query, search_after=first.hits[-1].sort_values, with_facets=False
                )
        out.append(query)
    return out


async def run_mix(index: Any, mix: list[SearchQuery], *, fuzzy: bool = False) -> tuple[list[float], float]:
    """Latency of each search (ms) and CPU per search (ms); ``fuzzy`` hides the vocabulary."""
    vocabulary = tantivy_reads._vocabulary
    if fuzzy:
        tantivy_reads._vocabulary = lambda engine: None
    try:
        times = []
        cpu = time.process_time()
        for query in mix:
            start = time.perf_counter()
            await index.search(query)
            times.append((time.perf_counter() - start) * 1000)
        return times, (time.process_time() - cpu) * 1000 / len(mix)
    finally:
        tantivy_reads._vocabulary = vocabulary


async def run_baseline(index: Any, words: list[str]) -> list[float]:
    """A plain term query straight on Tantivy: top FETCH of one title term, stored docs loaded."""
    engine = index._current()

    def one(word: str) -> None:
        searcher = engine.index.searcher()
        hits = searcher.search(tantivy.Query.term_query(SCHEMA, "title", word), limit=FETCH).hits
        for _, address in hits:
            searcher.doc(address)

    times = []
    for word in words:
        start = time.perf_counter()
        await asyncio.to_thread(one, word)
        times.append((time.perf_counter() - start) * 1000)
    return times


Stats = dict[str, list[tuple[float, float, float]]]  # per mode, per run: (p50 ms, p99 ms, CPU ms/search)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--queries", type=int, default=400, help="queries in the mix")
    parser.add_argument("--limit", type=int, default=None, help="index only the first N documents")
    return parser.parse_args()


async def build_index(index: TantivySearchIndex, docs: list[SearchDocument]) -> float:
    """Index ``docs``; the seconds it took."""
    await index.ensure_index()
    started = time.perf_counter()
    for i in range(0, len(docs), 5000):
        await index.upsert(docs[i : i + 5000])
    await index.refresh()
    return time.perf_counter() - started


def build_vocabulary(index: TantivySearchIndex) -> None:
    """Build the vocabulary before the runs, so that no timed search pays for it."""
    engine = index._current()
    started = time.perf_counter()
    tantivy_reads._vocabulary(engine)
    tantivy_reads._trackers[engine].refresh()
    print(f"vocabulary built in {time.perf_counter() - started:.2f}s")


async def measure(index: TantivySearchIndex, mix: list[SearchQuery], words: list[str], runs: int) -> Stats:
    """One warm-up pass of every mode, then ``runs`` timed ones."""
    stats: Stats = {"vocabulary": [], "fuzzy": [], "term query": []}
    _, cold = await run_mix(index, mix)  # warm-up: page cache, readers, each word's typo variants
    await run_mix(index, mix, fuzzy=True)
    await run_baseline(index, words)
    print(f"  warm-up pass (variants of every word looked up for the first time): {cold:.2f} ms CPU/search")
    for run in range(runs):
        for mode in ("vocabulary", "fuzzy"):
            times, cpu = await run_mix(index, mix, fuzzy=mode == "fuzzy")
            stats[mode].append((_percentile(times, 0.5), _percentile(times, 0.99), cpu))
        cpu = time.process_time()
        base = await run_baseline(index, words)
        base_cpu = (time.process_time() - cpu) * 1000 / len(words)
        stats["term query"].append((_percentile(base, 0.5), _percentile(base, 0.99), base_cpu))
        print(
            f"  run {run + 1}: "
            + " | ".join(
                f"{mode} p50 {v[-1][0]:.2f} ms p99 {v[-1][1]:.2f} ms CPU {v[-1][2]:.2f} ms"
                for mode, v in stats.items()
            )
        )
    return stats


def print_summary(stats: Stats) -> None:
    med = {mode: tuple(statistics.median(x[i] for x in v) for i in range(3)) for mode, v in stats.items()}
    print("Tantivy search, in-process (target: mix p99 <= 10 ms); medians over runs")
    for mode, (p50, p99, cpu) in med.items():
        print(f"  {mode:<22} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   CPU {cpu:5.2f} ms/search")
    p50, p99, cpu = med["vocabulary"]
    b50, b99, _ = med["term query"]
    print(
        f"  ratio mix/baseline p50 {p50 / b50:.1f}x  p99 {p99 / b99:.1f}x; CPU vocabulary/fuzzy "
        f"{cpu / med['fuzzy'][2]:.0%}; target met: {p99 <= 10.0}"
    )


async def main() -> None:
    args = parse_args()
    docs, source = load_documents(limit=args.limit)
    with tempfile.TemporaryDirectory() as root:
        index = TantivySearchIndex(root)
        indexed = await build_index(index, docs)
        print(
            f"search engine benchmark: {len(docs):,} documents ({source}) indexed in "
            f"{indexed:.1f}s; {args.queries} queries x {args.runs} runs"
        )
        build_vocabulary(index)
        mix = await with_cursors(index, query_mix(docs, args.queries))
        words = [t for q in mix if q.text for t in analyze(q.text)[:1]]
        stats = await measure(index, mix, words, args.runs)
        await index.close()
    print_summary(stats)


if __name__ == "__main__":
    asyncio.run(main())
