from __future__ import annotations

from decimal import Decimal

from search.port import SearchDocument
from search.versions import FacetTable, count_facets, price_bucket


def _doc(
    pid: str, *, brand: str = "Acme", path: tuple[str, ...] = ("Home", "Tools"), price: str = "10"
) -> SearchDocument:
    return SearchDocument(
        product_id=pid,
        revision=1,
        supplier_id="s",
        sku=pid,
        title=pid,
        brand=brand,
        category_path=path,
        price=Decimal(price),
    )


def _levels(path: tuple[str, ...]) -> list[str]:
    return [f"{i}|{'>'.join(path[:i])}" for i in range(1, len(path) + 1)]


def test_price_buckets_are_half_open() -> None:
    assert price_bucket(99.99) == "p0-100"
    assert price_bucket(100.0) == "p100-500"
    assert price_bucket(4999.0) == "p1000-5000"
    assert price_bucket(5000.0) == "p5000+"


def test_counts_come_back_in_the_aggregation_shape() -> None:
    table = FacetTable(_levels)
    docs = [_doc("a"), _doc("b", brand="Zenith", price="700"), _doc("c", brand="", path=())]
    counted = count_facets(table.value_of(d) for d in docs)
    as_dicts = {name: {b["key"]: b["doc_count"] for b in v["buckets"]} for name, v in counted.items()}
    assert as_dicts == {
        "brand": {"Acme": 1, "Zenith": 1},  # no bucket for a product without a brand
        "category": {"1|Home": 2, "2|Home>Tools": 2},
        "price": {"0-100": 2, "500-1000": 1},
    }
    assert count_facets([]) == {
        "brand": {"buckets": []},
        "category": {"buckets": []},
        "price": {"buckets": []},
    }


def test_lookup_reads_only_versions_it_has_not_seen() -> None:
    table = FacetTable(_levels)
    docs = {0: _doc("a"), 1: _doc("b", brand="Zenith")}
    loads: list[int] = []

    def load(i: int) -> SearchDocument:
        loads.append(i)
        return docs[i]

    first = table.lookup([11, 22], [1, 1], load)
    assert loads == [0, 1] and first[1][0] == "bZenith"
    assert table.lookup([22, 11], [1, 1], load) == [first[1], first[0]]
    assert loads == [0, 1]  # remembered
    docs[1] = _doc("b", brand="Other")
    assert table.lookup([11, 22], [1, 2], load)[1][0] == "bOther"  # a new revision is a new version
    assert loads == [0, 1, 1]


def test_a_full_table_starts_over() -> None:
    table = FacetTable(_levels, max_entries=2)
    table.lookup([1, 2], [1, 1], lambda i: _doc(str(i)))
    assert len(table) == 2
    table.lookup([3], [1], lambda i: _doc("c"))
    assert len(table) == 1
