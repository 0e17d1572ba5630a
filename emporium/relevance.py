"""``emporium eval relevance``: import a catalog into a throw-away embedded data dir, then rank every judged
query with Emporium's ``/v1/search`` (in process, through ``SearchService``) and with plain Okapi BM25
over the titles, in the same run, and score both (``search.relevance.metrics``).

The import is the real path: ingest with the feed's mapping profile, the event log, the search projector
(``emporium.demo.index_demo``). Every product gets one unit of default stock, so all are in stock and the
stock filter plays no part. ``titles_only`` imports only ids, titles and prices (a canonical feed written
from the mapped rows): the setting of the held-out human-judged set, where products have no brand, no
category and no description.
"""

from __future__ import annotations

import csv
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

from emporium.container import Container, ingest_service
from ingest.profiles import get_profile
from ingest.service import import_path
from ingest.validation import RowRejected, validate
from kernel.settings import load_settings
from search.delivery_zones import DeliveryZones
from search.out_of_stock import OutOfStockSet
from search.port import SearchIndex
from search.relevance.bm25 import BM25
from search.relevance.metrics import Judgments, Scores, evaluate
from search.schemas import MAX_PAGE_SIZE, SearchRequest
from search.service import SearchService

SUPPLIER = "eval"
DEPTH = 100  # ranks scored (recall@100); one /v1/search page of the largest size


class Catalog(msgspec.Struct, frozen=True):
    titles: list[tuple[str, str]]  # (product ref, title) of every row the profile accepts
    rejected: int


class Report(msgspec.Struct, kw_only=True):
    catalog: str
    products: int
    titles_only: bool
    emporium: Scores
    bm25: Scores
    typo_kept: dict[str, float] = {}  # with a typo set: share of clean-query finds the typo query keeps
    seconds: dict[str, float] = {}


def read_catalog(path: Path, profile_name: str) -> Catalog:
    """The catalog as its profile maps it (what ingest will accept), for BM25 and the titles-only feed."""
    profile = get_profile(profile_name, SUPPLIER, source_dir=path.parent)
    titles: list[tuple[str, str]] = []
    rejected = 0
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            try:
                product = validate(profile.map(row), SUPPLIER)
            except RowRejected:
                rejected += 1
                continue
            titles.append((product.product_id.split(":", 1)[1], product.title))
    return Catalog(titles, rejected)


def _titles_feed(catalog: Catalog, folder: Path) -> Path:
    path = folder / "titles.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["product_id", "sku", "title", "price"])
        for ref, title in catalog.titles:
            out.writerow([ref, f"T-{ref}", title, "1"])
    return path


async def _import(settings_dir: Path, feed: Path, profile: str, search_url: str | None) -> None:
    settings = load_settings(env={}, data_dir=str(settings_dir), search_url=search_url)
    async with ingest_service(settings) as service:
        await service.add_supplier(SUPPLIER, "Relevance evaluation")
        await import_path(service, feed, supplier_id=SUPPLIER, profile=profile, default_stock=1)
    from emporium.demo import index_demo  # here: emporium.demo imports the CLI, which imports this module

    await index_demo(settings)


def _refs(response_hits: list[object]) -> list[str]:
    return [str(getattr(hit, "product_id", "")).split(":", 1)[-1] for hit in response_hits]


async def rank_all(service: SearchService, queries: list[str]) -> dict[str, list[str]]:
    rankings: dict[str, list[str]] = {}
    for query in queries:
        response = await service.search(
            SearchRequest(q=query, size=min(DEPTH, MAX_PAGE_SIZE), in_stock=False)
        )
        rankings[query] = _refs(list(response.hits))
    return rankings


async def evaluate_catalog(
    judgments: Judgments,
    catalog_path: Path,
    profile: str,
    *,
    titles_only: bool = False,
    search_url: str | None = None,
    typo_pairs: dict[str, str] | None = None,
    keep: Path | None = None,
) -> Report:
    """Import, rank every judged query both ways, score. ``typo_pairs``: typo query -> clean query.
    ``keep``: import into this folder and keep it; when it holds an import already, reuse it."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    catalog = read_catalog(catalog_path, profile)
    with tempfile.TemporaryDirectory(prefix="emporium-eval-") as tmp:
        folder = Path(tmp) if keep is None else keep
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "imported").exists():
            feed, feed_profile = (
                (_titles_feed(catalog, folder), "canonical") if titles_only else (catalog_path, profile)
            )
            await _import(folder / "data", feed, feed_profile, search_url)
            (folder / "imported").touch()
        seconds["import"] = time.perf_counter() - started
        settings = load_settings(env={}, data_dir=str(folder / "data"), search_url=search_url)
        container = Container(settings, client_id="emporium-eval")
        index: SearchIndex = container.search_index()
        stock: OutOfStockSet = container.out_of_stock_set()
        async with container:
            await index.refresh()
            service = SearchService(index=index, stock=stock, zones=DeliveryZones())
            queries = sorted(set(judgments) | set(typo_pairs or {}) | set((typo_pairs or {}).values()))
            await _warm(service, queries)
            mark = time.perf_counter()
            ours = await rank_all(service, queries)
            seconds["emporium"] = time.perf_counter() - mark
    mark = time.perf_counter()
    bm25 = BM25(catalog.titles)
    theirs = {q: bm25.search(q, DEPTH) for q in judgments}
    seconds["bm25"] = time.perf_counter() - mark
    return Report(
        catalog=str(catalog_path),
        products=len(catalog.titles),
        titles_only=titles_only,
        emporium=evaluate(ours, judgments),
        bm25=evaluate(theirs, judgments),
        typo_kept=typo_kept(ours, judgments, typo_pairs) if typo_pairs else {},
        seconds={k: round(v, 1) for k, v in seconds.items()},
    )


async def _warm(service: SearchService, queries: list[str]) -> None:
    """One search first, so the index vocabulary (built in the background) serves the timed ranking."""
    if queries:
        await service.search(SearchRequest(q=queries[0], in_stock=False))
    warm = getattr(service.index, "warm", None)  # Tantivy: build the typo vocabulary before ranking
    if warm is not None:
        await warm()


def typo_kept(
    rankings: dict[str, list[str]], judgments: Judgments, pairs: dict[str, str]
) -> dict[str, float]:
    """Of the judged products a clean query finds (top ``DEPTH``), the share its typo query finds too;
    also over the pairs whose clean first word has 5+ letters (``_5plus``)."""
    counts = {"clean_found": 0, "typo_kept": 0, "clean_found_5plus": 0, "typo_kept_5plus": 0}
    for typo, clean in pairs.items():
        wanted = {ref for ref, grade in judgments.get(typo, {}).items() if grade > 0}
        found = wanted.intersection(rankings.get(clean, ()))
        kept = found.intersection(rankings.get(typo, ()))
        long_word = len(clean.split()[0]) >= 5 if clean.split() else False
        for suffix in ("", "_5plus") if long_word else ("",):
            counts["clean_found" + suffix] += len(found)
            counts["typo_kept" + suffix] += len(kept)
    out = {name: float(value) for name, value in counts.items()}
    for suffix in ("", "_5plus"):
        found_n = counts["clean_found" + suffix]
        out["kept_share" + suffix] = counts["typo_kept" + suffix] / found_n if found_n else 0.0
    return out


def format_report(report: Report) -> Iterator[str]:
    only = " (titles only)" if report.titles_only else ""
    yield f"catalog {report.catalog}: {report.products} products{only}"
    yield f"{'system':<10} {'queries':>7} {'nDCG@10':>8} {'cnDCG@10':>9} {'MRR':>6} {'R@100':>6}"
    for name, s in (("emporium", report.emporium), ("bm25", report.bm25)):
        yield (
            f"{name:<10} {s.queries:>7} {s.ndcg10:>8.4f} {s.ndcg10_condensed:>9.4f} "
            f"{s.mrr:>6.4f} {s.recall100:>6.4f}"
        )
    base = report.bm25.ndcg10_condensed
    if base > 0:
        yield f"condensed nDCG@10 emporium / bm25 = {report.emporium.ndcg10_condensed / base:.3f}"
    if report.typo_kept:
        t = report.typo_kept
        counts = f"{int(t['typo_kept'])}/{int(t['clean_found'])}"
        yield f"typo queries keep {t['kept_share']:.1%} of what the clean queries find ({counts})"
        counts = f"{int(t['typo_kept_5plus'])}/{int(t['clean_found_5plus'])}"
        yield f"  where the clean first word has 5+ letters: {t['kept_share_5plus']:.1%} ({counts})"
    yield f"seconds: {report.seconds}"
