"""The analysts' loop end to end, as processes: ``emporium serve`` (embedded default, a fresh data dir),
storefront traffic over HTTP, ``emporium analytics run all`` in a child process on the same data dir
(it archives the log first), and the API serving what the run published within 5 s of its end.

The traffic, the run and the checks are shared with the cluster test (``analytics_loop_support``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from analytics_loop_support import (
    ADMIN,
    analytics_run,
    check_rerun,
    check_run,
    loop_env,
    served_after,
    shop_day,
    timings_line,
)
from inventory_support import ServiceProcess, free_port

pytestmark = pytest.mark.slow

SERVED_WITHIN_S = 5.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServiceProcess, dict[str, str]]]:
    env = loop_env(tmp_path / "data")
    service = ServiceProcess(env=env, port=free_port(), log=tmp_path / "serve.log")
    service.start()
    try:
        yield service, env
    finally:
        service.kill()


def test_storefront_traffic_becomes_recommendations_and_trending_within_5s(
    server: tuple[ServiceProcess, dict[str, str]],
) -> None:
    service, env = server
    with httpx.Client(base_url=service.base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30) as c:
        shop = shop_day(c)
        out, shop.timings["run"] = analytics_run(env)
        ended = time.monotonic()
        check_run(out, env)
        shop.timings["served"] = served_after(c, out, shop.products, ended, SERVED_WITHIN_S)
        shop.timings["rerun"] = check_rerun(env)
    print(timings_line("loop", shop))
