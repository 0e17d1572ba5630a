"""Projection throughput of the real catalogs (~40k products) into the search index adapters.

    python -m loadtest.bench_projection [--es-url URL] [--runs 3] [--batch 2000] [--limit N]

* Tantivy: the adapter's ``upsert`` in projector-sized batches (revision checks, one commit per batch)
  vs raw Tantivy (the same field values added by one writer, one commit) in the same run.
* Elasticsearch (with --es-url): the adapter's ``upsert`` (external versioning, 409 accounting) vs raw
  ``helpers.async_bulk`` of the same bodies, into fresh indexes on the same server, in the same run.

Prints the median docs/s of each and the ratio. Uses ../shared/datasets when present (and says so);
otherwise a deterministic synthetic catalog of the same size.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import statistics
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import msgspec
import tantivy
from elasticsearch import AsyncElasticsearch, helpers

from ingest.profiles import get_profile
from ingest.validation import RowRejected, validate
from search.documents import document_from_product
from search.elasticsearch import ElasticsearchSearchIndex
from search.elasticsearch.mapping import index_mappings, index_settings, to_source
from search.port import SearchDocument
from search.tantivy import TantivySearchIndex
from search.tantivy.documents import to_document
from search.tantivy.schema import SCHEMA, product_hash, register_analyzers

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def load_documents(datasets: Path = DATASETS, limit: int | None = None) -> tuple[list[SearchDocument], str]:
    """The documents the projector would index for the real catalogs: each row mapped by its supplier's
    ingest profile, validated, and turned into a document (``document_from_product``)."""
    docs: list[SearchDocument] = []
    feeds = [(name, datasets / f"{name}_products.csv") for name in ("bigbasket", "myntra")]
    if all(path.exists() for _, path in feeds):
        for supplier, path in feeds:
            profile = get_profile(supplier, supplier, source_dir=path.parent)
            with path.open(newline="", encoding="utf-8") as fh:
                for i, row in enumerate(csv.DictReader(fh)):
                    try:
                        product = validate(profile.map(row), supplier)
                    except RowRejected:
                        continue
                    doc = document_from_product(
                        product,
                        1,
                        in_stock=True,
                        created_at_ms=1_700_000_000_000 + len(docs),
                        popularity=float(i % 1000),
                    )
                    # the catalogs carry no stock: four warehouses in turn, for the delivery filter
                    docs.append(msgspec.structs.replace(doc, warehouses=(f"WH-{len(docs) % 4}",)))
        source = f"real catalogs from {datasets}"
    else:
        words = ["organic", "cotton", "shirt", "oil", "rice", "garlic", "blue", "steel", "bottle", "soap"]
        for i in range(40_000):
            title = " ".join(words[(i * k) % len(words)] for k in (1, 3, 7)) + f" {i}"
            docs.append(
                SearchDocument(
                    product_id=f"synthetic:{i}",
                    revision=1,
                    supplier_id="synthetic",
                    sku=f"SY-{i}",
                    title=title,
                    description=title * 3,
                    brand=f"Brand {i % 300}",
                    category_path=("Cat", f"Sub {i % 20}"),
                    price=Decimal(i % 5000) + Decimal("0.99"),
                )
            )
        source = f"synthetic catalog (real datasets not found at {datasets})"
    return (docs[:limit] if limit else docs), source


async def tantivy_adapter(docs: list[SearchDocument], batch: int) -> float:
    with tempfile.TemporaryDirectory() as root:
        index = TantivySearchIndex(root)
        await index.ensure_index()
        start = time.perf_counter()
        for i in range(0, len(docs), batch):
            await index.upsert(docs[i : i + batch])
        elapsed = time.perf_counter() - start
        assert await index.count() == len(docs)
        await index.close()
    return len(docs) / elapsed


def tantivy_raw(docs: list[SearchDocument]) -> float:
    with tempfile.TemporaryDirectory() as root:
        index = tantivy.Index(SCHEMA, path=root)
        register_analyzers(index)
        writer = index.writer(heap_size=128_000_000, num_threads=1)
        start = time.perf_counter()
        for doc in docs:
            writer.add_document(to_document(doc, product_hash(doc.product_id)))
        writer.commit()
        elapsed = time.perf_counter() - start
        writer.wait_merging_threads()
    return len(docs) / elapsed


async def es_adapter(url: str, docs: list[SearchDocument], batch: int) -> float:
    index = ElasticsearchSearchIndex(url, f"bench-{uuid.uuid4().hex[:8]}", chunk_size=batch)
    await index.ensure_index()
    try:
        start = time.perf_counter()
        for i in range(0, len(docs), batch):
            await index.upsert(docs[i : i + batch])
        elapsed = time.perf_counter() - start
    finally:
        aliased = await index.client.indices.get_alias(name=index.name)
        for physical in aliased.body:
            await index.client.indices.delete(index=physical)
        await index.close()
    return len(docs) / elapsed


async def es_raw(url: str, docs: list[SearchDocument], batch: int) -> float:
    client = AsyncElasticsearch(url, request_timeout=120)
    name = f"benchraw-{uuid.uuid4().hex[:8]}"
    await client.indices.create(index=name, settings=index_settings(), mappings=index_mappings())
    bodies = [(doc.product_id, to_source(doc)) for doc in docs]  # prepared outside the timing
    try:
        start = time.perf_counter()
        await helpers.async_bulk(
            client, ({"_index": name, "_id": pid, "_source": body} for pid, body in bodies), chunk_size=batch
        )
        elapsed = time.perf_counter() - start
    finally:
        await client.indices.delete(index=name)
        await client.close()
    return len(docs) / elapsed


def _line(label: str, values: list[float]) -> float:
    median = statistics.median(values)
    print(f"  {label:<34} median {median:>9,.0f} docs/s   runs: {', '.join(f'{v:,.0f}' for v in values)}")
    return median


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--es-url", help="Elasticsearch URL (e.g. http://127.0.0.1:9200); omitted: Tantivy only"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2000, help="documents per upsert call (projector batch)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N documents")
    parser.add_argument(
        "--es-limit", type=int, default=None, help="documents for Elasticsearch (default: all)"
    )
    args = parser.parse_args()

    docs, source = load_documents(limit=args.limit)
    print(f"projection benchmark: {len(docs):,} documents ({source}), batch {args.batch}, {args.runs} runs")

    adapter, raw = [], []
    for _ in range(args.runs):  # interleaved so both see the same machine load
        adapter.append(await tantivy_adapter(docs, args.batch))
        raw.append(await asyncio.to_thread(tantivy_raw, docs))
    print("Tantivy (target: adapter >= 20,000 docs/s)")
    a, r = _line("adapter upsert (commit per batch)", adapter), _line("raw tantivy writer, one commit", raw)
    print(f"  ratio adapter/raw {a / r:.2f}; target met: {a >= 20_000}")

    if args.es_url:
        es_docs = docs[: args.es_limit] if args.es_limit else docs
        adapter, raw = [], []
        for _ in range(args.runs):  # interleaved so both see the same server conditions
            raw.append(await es_raw(args.es_url, es_docs, args.batch))
            adapter.append(await es_adapter(args.es_url, es_docs, args.batch))
        print(f"Elasticsearch at {args.es_url}, {len(es_docs):,} documents (target: adapter >= 80% of raw)")
        a, r = _line("adapter upsert (external versions)", adapter), _line("raw helpers.async_bulk", raw)
        print(f"  ratio adapter/raw {a / r:.2f}; target met: {a >= 0.8 * r}")


if __name__ == "__main__":
    asyncio.run(main())
