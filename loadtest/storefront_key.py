"""The storefront key the Locust scenarios send (``X-Api-Key``), so the server counts their shoppers
against a storefront's rate limit, not one anonymous address's (no Locust import here).

``EMPORIUM_STOREFRONT_KEY``, else ``.emporium/demo/storefront-api-key`` (what ``emporium demo`` saves),
else one registered at start with ``EMPORIUM_ADMIN_TOKEN``; else none (the shoppers are anonymous).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import httpx

DEMO_STOREFRONT_KEY = Path(".emporium/demo/storefront-api-key")


def storefront_key(host: str, prefix: str) -> str | None:
    """The key, registering a storefront named ``prefix-<random>`` when only the admin token is set."""
    key = os.environ.get("EMPORIUM_STOREFRONT_KEY")
    if not key and DEMO_STOREFRONT_KEY.is_file():
        key = DEMO_STOREFRONT_KEY.read_text().strip()
    token = os.environ.get("EMPORIUM_ADMIN_TOKEN")
    if not key and token:
        created = httpx.post(
            f"{host}/v1/storefronts",
            json={"storefront_id": f"{prefix}-{uuid.uuid4().hex[:8]}"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        created.raise_for_status()
        key = str(created.json()["api_key"])
    return key or None
