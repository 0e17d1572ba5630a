"""``emporium eval relevance`` end to end on a small slice of the real bigbasket catalog, with floors.

The slice: every product the small judged sets name plus 3,000 other rows, so a run takes seconds. The
floors sit a little under what the ranking reached when they were set (docs/BENCHMARKS.md, "Relevance");
a change that drops below them made search worse on judgments nobody tuned a single query for.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from emporium.relevance import Report, evaluate_catalog
from search.relevance.metrics import read_judgments

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"
BIGBASKET = DATASETS / "bigbasket_products.csv"
JUDGMENTS = Path(__file__).resolve().parents[2] / "search" / "relevance" / "judgments"
TYPE_QUERIES = 25

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not BIGBASKET.exists(), reason=f"the real catalog is not at {BIGBASKET}"),
]


def _slice(path: Path, refs: set[str], extra: int = 3000) -> Path:
    with BIGBASKET.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    others = [r for r in rows if r[0] not in refs]
    keep = [r for r in rows if r[0] in refs] + random.Random(7).sample(others, extra)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(header)
        out.writerows(keep)
    return path


def _typo_pairs(path: Path) -> dict[str, str]:
    with path.open(newline="", encoding="utf-8") as fh:
        return {r["query"]: r["clean_query"] for r in csv.DictReader(fh)}


async def _run(tmp_path: Path) -> tuple[Report, Report]:
    typo_file = JUDGMENTS / "bigbasket_typos_small.csv"
    typos = read_judgments(typo_file)
    dev = read_judgments(JUDGMENTS / "bigbasket_types_dev.csv")
    types = {q: dev[q] for q in sorted(dev)[:TYPE_QUERIES]}
    refs = {ref for grades in (*typos.values(), *types.values()) for ref in grades}
    catalog = _slice(tmp_path / "slice.csv", refs)
    typo_report = await evaluate_catalog(typos, catalog, "bigbasket", typo_pairs=_typo_pairs(typo_file))
    type_report = await evaluate_catalog(types, catalog, "bigbasket", titles_only=True)
    return typo_report, type_report


async def test_eval_relevance_stays_above_its_floors(tmp_path: Path) -> None:
    typo_report, type_report = await _run(tmp_path)
    assert typo_report.typo_kept["kept_share"] >= 0.95, typo_report.typo_kept
    assert typo_report.emporium.mrr >= 0.5
    assert type_report.bm25.queries == TYPE_QUERIES
    # 1.16x when set (main before issue 18: below 1x on the full catalog)
    assert type_report.emporium.ndcg10_condensed >= 1.05 * type_report.bm25.ndcg10_condensed, (
        type_report.emporium,
        type_report.bm25,
    )
