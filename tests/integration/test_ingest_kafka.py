"""A feed imported with the Kafka event-log adapter (real broker from the kafka_url fixture)."""

from __future__ import annotations

import uuid
from pathlib import Path

from emporium.adapters import EVENT_LOG
from emporium.container import ingest_service
from ingest.service import import_path
from ingest.synthetic import write_csv, write_ndjson
from kernel.contracts.events import CATALOG_TOPIC, ProductRemoved, ProductUpserted, decode_event
from kernel.settings import load_settings


async def catalog_events(kafka_url: str, supplier_id: str) -> list[tuple[str, str, int]]:
    log = EVENT_LOG.open(kafka_url, client_id="ingest-kafka-test")
    await log.start()
    consumer = log.consumer([CATALOG_TOPIC], f"ingest-check-{uuid.uuid4().hex}", start_from="earliest")
    await consumer.start()
    out: list[tuple[str, str, int]] = []
    try:
        idle = 0
        while idle < 3:
            batch = await consumer.poll(5000, timeout=1.0)
            idle = 0 if batch else idle + 1
            for record in batch:
                event = decode_event(record.value)
                payload = event.payload
                owner = (
                    payload.product.supplier_id
                    if isinstance(payload, ProductUpserted)
                    else getattr(payload, "supplier_id", None)
                )
                if owner == supplier_id and isinstance(payload, ProductUpserted | ProductRemoved):
                    out.append((type(payload).__name__, event.key, event.revision))
    finally:
        await consumer.stop()
        await log.close()
    return out


async def test_import_into_kafka_is_idempotent(kafka_url: str, tmp_path: Path) -> None:
    settings = load_settings(env={}, data_dir=str(tmp_path), event_log_url=kafka_url)
    supplier = f"kafka-{uuid.uuid4().hex[:8]}"
    feed = write_csv(tmp_path / "feed.csv", 1500, seed=7)
    async with ingest_service(settings) as service:
        await service.add_supplier(supplier)
        first = await import_path(service, feed, supplier_id=supplier)
        again = await import_path(service, feed, supplier_id=supplier)
        smaller = write_ndjson(tmp_path / "feed.ndjson", 1400, seed=7)
        full = await import_path(service, smaller, supplier_id=supplier, mode="full")
    assert (first.accepted, first.changed) == (1500, 1500)
    assert (again.unchanged, again.changed) == (1500, 0)
    assert (full.unchanged, full.removed) == (1400, 100)
    events = await catalog_events(kafka_url, supplier)
    upserts = [e for e in events if e[0] == "ProductUpserted"]
    removals = [e for e in events if e[0] == "ProductRemoved"]
    assert len(upserts) == 1500 and {rev for _, _, rev in upserts} == {1}
    assert len(removals) == 100 and {rev for _, _, rev in removals} == {2}
    assert {key for _, key, _ in removals} == {f"{supplier}:SYN-{n:06d}" for n in range(1401, 1501)}
