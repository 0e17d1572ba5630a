"""``emporium project`` as an operator runs it (a child process on an embedded data dir): it projects
recommendation result events into the recommendations store until SIGTERM, and says that an in-process
trending store is left to the serving processes (each follows the trending topic itself)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from emporium.adapters import RECOMMENDATIONS_STORE
from kernel.contracts.events import PopularProductsComputed, RelatedProductsComputed, new_event
from kernel.eventlog.processing import publish_events
from kernel.eventlog.sqlite import SqliteEventLog

WITHIN_S = 30.0


async def test_project_writes_related_and_popular_lists(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    log = SqliteEventLog.from_url(f"sqlite:///{data / 'events.db'}")
    await log.start()
    emporium = str(Path(sys.executable).parent / "emporium")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EMPORIUM_")},
        "EMPORIUM_DATA_DIR": str(data),
        "EMPORIUM_LOG_FORMAT": "console",
    }
    proc = await asyncio.create_subprocess_exec(
        emporium, "project", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    store = RECOMMENDATIONS_STORE.open(f"sqlite:///{data / 'recommendations.db'}")
    try:
        related = RelatedProductsComputed(product_id="s:1", product_ids=("s:2", "s:3"))
        popular = PopularProductsComputed(product_ids=("s:9",), region="south")
        await publish_events(
            log,
            [
                new_event(related, key="related:s:1", revision=1, producer="t"),
                new_event(popular, key="popular:south", revision=1, producer="t"),
            ],
        )
        deadline = time.monotonic() + WITHIN_S
        while not (data / "recommendations.db").exists():
            assert proc.returncode is None and time.monotonic() < deadline
            await asyncio.sleep(0.1)
        await store.start()
        while (await store.get_related("s:1")) is None or (await store.get_popular("south")) is None:
            assert proc.returncode is None, "emporium project exited"
            assert time.monotonic() < deadline, f"not projected within {WITHIN_S}s"
            await asyncio.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        output = (await asyncio.wait_for(proc.communicate(), 30))[0].decode()
        await store.close()
        await log.close()
    assert proc.returncode == 0, output
    assert "trending store is in-process" in output
