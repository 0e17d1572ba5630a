"""Build the judged sets shipped in ``search/relevance/judgments/`` from the real catalogs (deterministic).

    python -m loadtest.judged_sets [--datasets ../shared/datasets] [--out search/relevance/judgments]

How each set is built is written in ``search/relevance/judgments/README.md``; this module is that recipe.
Queries come from attributes held out of the titles (bigbasket ``type``/``sub_category``, myntra gender and
colour), and grades from attribute agreement, never from title words; the pool of judged items is sampled
without looking at any ranking, so no system (Emporium or BM25) chose what was judged.
"""

from __future__ import annotations

import argparse
import csv
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
OUT = Path(__file__).resolve().parents[1] / "search" / "relevance" / "judgments"
_WORD = re.compile(r"[a-z]+")
POOL = {2: 12, 1: 8, 0: 12}  # judged items sampled per query and grade


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _query_of_label(label: str) -> str:
    """ "Shampoo & Conditioner" -> "shampoo conditioner"; "Men's Deodorants" -> "mens deodorants"."""
    return " ".join(_words(label.replace("'", "")))


def _pool(rng: random.Random, graded: dict[int, list[str]]) -> list[tuple[str, int]]:
    rows: list[tuple[str, int]] = []
    for grade, refs in graded.items():
        picked = refs if len(refs) <= POOL[grade] else rng.sample(refs, POOL[grade])
        rows += [(ref, grade) for ref in sorted(picked)]
    return rows


def bigbasket_types(rows: list[dict[str, str]], rng: random.Random) -> list[tuple[str, str, int]]:
    """One query per product type with 15+ products: the type's name. Grade 2: that type; 1: another type
    of the same sub-category; 0: a product of another sub-category whose title shares a query word (a
    lexical near miss), sampled."""
    by_type: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_type[row["type"].strip()].append(row)
    by_word: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        for word in set(_words(row["product"])):
            by_word[word].append(row)
    out: list[tuple[str, str, int]] = []
    for label in sorted(t for t, members in by_type.items() if len(members) >= 15 and t):
        query = _query_of_label(label)
        members = by_type[label]
        sub = members[0]["sub_category"].strip()
        same_sub = [
            r["index"] for r in rows if r["sub_category"].strip() == sub and r["type"].strip() != label
        ]
        near = {
            r["index"]
            for w in query.split()
            if len(w) > 2
            for r in by_word.get(w, ())
            if r["sub_category"].strip() != sub
        }
        graded = {2: [r["index"] for r in members], 1: same_sub, 0: sorted(near)}
        out += [(query, ref, grade) for ref, grade in _pool(rng, graded)]
    return out


def myntra_gender_colour(rows: list[dict[str, str]], rng: random.Random) -> list[tuple[str, str, int]]:
    """Queries "<gender> <colour> <product type>" for combinations with 8+ products, the product type being
    the right-most type noun of the title (the ``myntra`` profile's rule: this one attribute comes from the
    title). Grade 2: same gender, colour and type; 1: same type, another colour or gender; 0: same gender
    and colour, another type."""
    from ingest.profiles import myntra_product_type

    key_rows: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for row in rows:
        kind = myntra_product_type(row["ProductName"])
        colour = (row.get("PrimaryColor") or "").strip()
        if kind != "Other" and colour:
            key_rows[(row["Gender"].strip(), colour, kind)].append(row["ProductID"])
    by_kind: dict[str, list[str]] = defaultdict(list)
    by_gc: dict[tuple[str, str], list[str]] = defaultdict(list)
    for (gender, colour, kind), refs in key_rows.items():
        by_kind[kind] += refs
        by_gc[(gender, colour)] += refs
    combos = sorted(k for k, refs in key_rows.items() if len(refs) >= 8)
    out: list[tuple[str, str, int]] = []
    for gender, colour, kind in rng.sample(combos, min(120, len(combos))):
        exact = key_rows[(gender, colour, kind)]
        query = f"{gender} {colour} {kind}".lower()
        graded = {
            2: exact,
            1: sorted(set(by_kind[kind]) - set(exact)),
            0: sorted(set(by_gc[(gender, colour)]) - set(by_kind[kind])),
        }
        out += [(query, ref, grade) for ref, grade in _pool(rng, graded)]
    return out


def swap_typo(word: str, rng: random.Random) -> str | None:
    """``word`` with two adjacent, different letters swapped at a random place (None: no such place)."""
    places = [i for i in range(len(word) - 1) if word[i].lower() != word[i + 1].lower()]
    if not places:
        return None
    i = rng.choice(places)
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def bigbasket_typos(
    rows: list[dict[str, str]], rng: random.Random, n: int = 200
) -> list[tuple[str, str, int, str]]:
    """Random products; two random words of the title (letters only, 3+ letters, in title order) form the
    clean query; one adjacent swap in the first word makes the typo query. The product is the one judged
    item (grade 1); the 4th column names the clean query."""
    out: list[tuple[str, str, int, str]] = []
    seen: set[str] = set()
    while len(out) < n:
        row = rng.choice(rows)
        words = [w for w in row["product"].split() if w.isalpha() and len(w) >= 3]
        if len(words) < 2:
            continue
        i, j = sorted(rng.sample(range(len(words)), 2))
        typo = swap_typo(words[i], rng)
        if typo is None:
            continue
        query = f"{typo} {words[j]}"
        if query in seen:
            continue
        seen.add(query)
        out.append((query, row["index"], 1, f"{words[i]} {words[j]}"))
    return out


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if (r.get("product") or r.get("ProductName") or "").strip()]


def _write(path: Path, header: list[str], rows: Sequence[tuple[object, ...]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(header)
        out.writerows(rows)
    print(f"{path}: {len(rows)} judgments, {len({r[0] for r in rows})} queries")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    bigbasket = _read(args.datasets / "bigbasket_products.csv")
    types = bigbasket_types(bigbasket, random.Random(18))
    queries = sorted({q for q, _, _ in types})
    holdout = set(random.Random(1818).sample(queries, len(queries) // 3))
    header = ["query", "product_ref", "grade"]
    _write(args.out / "bigbasket_types_dev.csv", header, [r for r in types if r[0] not in holdout])
    _write(args.out / "bigbasket_types_holdout.csv", header, [r for r in types if r[0] in holdout])
    myntra = _read(args.datasets / "myntra_products.csv")
    _write(args.out / "myntra_gender_colour.csv", header, myntra_gender_colour(myntra, random.Random(18)))
    typos = bigbasket_typos(bigbasket, random.Random(2026))
    _write(args.out / "bigbasket_typos.csv", [*header, "clean_query"], typos)
    _write(args.out / "bigbasket_typos_small.csv", [*header, "clean_query"], typos[:40])


if __name__ == "__main__":
    main()
