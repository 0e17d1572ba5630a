"""Durable outputs -> result events on the log.

Events are built from the committed Parquet (never from Spark's memory), so what is published is exactly
what is stored, and a run that died after committing can publish on the next run without recomputing.
Event ids are derived from (job, version, key) and the revision from the input (``Snapshot.revision``):
publishing the same version twice sends byte-identical events that the projectors drop as repeats.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from analytics.jobs.outputs import JobOutputs
from analytics.jobs.trending import KINDS, WINDOWS
from kernel.contracts.events import (
    Envelope,
    Payload,
    PopularProductsComputed,
    RecommendationsComputed,
    RelatedProductsComputed,
    TrendingComputed,
    TrendingEntry,
)
from kernel.eventlog.port import EventLog
from kernel.eventlog.processing import publish_events

NAMESPACE = uuid.UUID("5b0d7c3e-3f4e-4a8e-9a51-8d2f0c1e7a15")
BATCH = 1000


def _ranked(table: pa.Table, group: Sequence[str], value: str) -> dict[tuple[Any, ...], list[Any]]:
    """Rows grouped by ``group`` columns, each group's ``value`` in rank order."""
    out: dict[tuple[Any, ...], list[tuple[int, Any]]] = defaultdict(list)
    columns = [table.column(c).to_pylist() for c in (*group, "rank")]
    values = table.column(value).to_pylist() if value != "*" else table.to_pylist()
    for i, item in enumerate(values):
        out[tuple(col[i] for col in columns[:-1])].append((columns[-1][i], item))
    return {k: [v for _, v in sorted(items, key=lambda x: x[0])] for k, items in sorted(out.items())}


def _trending(outputs: JobOutputs, version: str) -> Iterator[tuple[str, Payload]]:
    """One list per kind, window and region (every region of the input's last day, and ""), empty when
    nothing reached the minimum support: an empty list replaces a stale one in the read model."""
    manifest = outputs.manifest(version)
    lists = _ranked(outputs.read(version, "trending"), ("kind", "window", "region"), "*")
    regions = {"", *manifest.get("summary", {}).get("regions", ())}
    end = datetime.fromisoformat(manifest["watermark"])
    for kind, window, region in sorted(
        {(k, w, r) for k in KINDS for w in WINDOWS for r in regions} | set(lists)
    ):
        rows = lists.get((kind, window, region), [])
        entries = tuple(TrendingEntry(key=r["key"], score=r["score"], count=r["count"]) for r in rows)
        payload = TrendingComputed(
            window=window, kind=kind, window_end=end, entries=entries, region=region, run_id=version
        )
        yield f"trending:{kind}:{window}:{region}", payload


def payloads(job: str, outputs: JobOutputs, version: str) -> Iterator[tuple[str, Payload]]:
    """(entity key, payload) for every result of one committed version.

    Popularity comes after the per-user lists: the every-region popularity list is what supersedes
    older runs' per-user lists (``read_models.recommendations.is_current``), so a winning run's lists
    are sent before it and, on a log that keeps the order, users are not shown popularity meanwhile."""
    tables = outputs.tables(version)
    if "trending" in tables:
        yield from _trending(outputs, version)
    if "user_recs" in tables:
        for (user,), ids in _ranked(outputs.read(version, "user_recs"), ("user_id",), "product_id").items():
            yield f"user:{user}", RecommendationsComputed(user_id=user, product_ids=tuple(ids), model="als")
    if "related" in tables:
        for (product,), ids in _ranked(
            outputs.read(version, "related"), ("product_id",), "related_id"
        ).items():
            yield f"related:{product}", RelatedProductsComputed(product_id=product, product_ids=tuple(ids))
    if "popular" in tables:
        for (region,), ids in _ranked(outputs.read(version, "popular"), ("region",), "product_id").items():
            yield f"popular:{region}", PopularProductsComputed(product_ids=tuple(ids), region=region)


def envelopes(job: str, outputs: JobOutputs, version: str) -> Iterator[Envelope]:
    manifest = outputs.manifest(version)
    revision = int(manifest["revision"])
    occurred_at = datetime.fromisoformat(manifest["watermark"])
    for key, payload in payloads(job, outputs, version):
        yield Envelope(
            event_id=uuid.uuid5(NAMESPACE, f"{job}/{version}/{key}").hex,
            type=payload.event_type,
            occurred_at=occurred_at,
            key=key,
            revision=revision,
            producer=f"analytics.{job}",
            payload=payload,
        )


async def publish_version(log: EventLog, job: str, outputs: JobOutputs, version: str) -> int:
    """Publish every event of ``version`` (in batches), then mark it published. Returns the count."""
    count, batch = 0, []
    for event in envelopes(job, outputs, version):
        batch.append(event)
        if len(batch) >= BATCH:
            await publish_events(log, batch)
            count, batch = count + len(batch), []
    if batch:
        await publish_events(log, batch)
        count += len(batch)
    outputs.mark_published(version)
    return count
