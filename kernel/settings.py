"""Configuration: one URL per port, read once at start from env vars or a TOML file.

Precedence: ``EMPORIUM_<NAME>`` env var > ``[emporium]`` table of the TOML file named by
``EMPORIUM_CONFIG`` (or ``./emporium.toml`` when present) > embedded defaults under the data dir.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec

ENV_PREFIX = "EMPORIUM_"


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    data_dir: Path
    event_log_url: str
    search_url: str
    cache_url: str
    database_url: str
    recommendations_url: str
    spark_url: str = "local[*]"
    admin_token: str | None = None
    feed_max_bytes: int = 200 * 1024 * 1024
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    log_format: str = "json"  # "json" or "console"
    # Run projectors inside `serve` (embedded default); a cluster deployment runs `emporium project`.
    inprocess_projectors: bool = True
    # Rendered search pages cached per serving process (~10 KiB each, plus a sixteenth as many index
    # answers at ~45 KiB: ~200 MB when full); 0 disables. The stock filter is never cached.
    search_cache_entries: int = 16384
    # How long cached search pages outlive a stock-out (they already hide the item; only totals and
    # facet counts may still count it): more keeps more pages through a flash sale, 0 drops them at once.
    search_stock_out_grace_s: Annotated[float, msgspec.Meta(ge=0)] = 1.0

    @property
    def embedded(self) -> bool:
        return self.event_log_url.startswith("sqlite:")

    def public_dict(self) -> dict[str, Any]:
        """Settings safe to print (no secrets)."""
        data = msgspec.to_builtins(self, enc_hook=str)
        data["admin_token"] = "***" if self.admin_token else None
        return data


_FIELDS = {
    "data_dir": str,
    "event_log_url": str,
    "search_url": str,
    "cache_url": str,
    "database_url": str,
    "recommendations_url": str,
    "spark_url": str,
    "admin_token": str,
    "feed_max_bytes": int,
    "host": str,
    "port": int,
    "log_level": str,
    "log_format": str,
    "inprocess_projectors": bool,
    "search_cache_entries": int,
    "search_stock_out_grace_s": float,
}


def _parse_bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build Settings once; pass ``env`` in tests instead of mutating ``os.environ``."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}

    config_path = env.get(ENV_PREFIX + "CONFIG")
    candidate = Path(config_path) if config_path else Path("emporium.toml")
    if config_path or candidate.exists():
        with candidate.open("rb") as fh:
            raw.update(tomllib.load(fh).get("emporium", {}))

    for name, kind in _FIELDS.items():
        value = env.get(ENV_PREFIX + name.upper())
        if value is None:
            continue
        raw[name] = _parse_bool(value) if kind is bool else kind(value)
    raw.update({k: v for k, v in overrides.items() if v is not None})

    data_dir = Path(raw.get("data_dir", ".emporium")).expanduser().resolve()
    raw["data_dir"] = data_dir
    raw.setdefault("event_log_url", f"sqlite:///{data_dir / 'events.db'}")
    raw.setdefault("search_url", f"tantivy:///{data_dir / 'search'}")
    raw.setdefault("cache_url", "memory://")
    raw.setdefault("database_url", f"sqlite:///{data_dir / 'emporium.db'}")
    raw.setdefault("recommendations_url", f"sqlite:///{data_dir / 'recommendations.db'}")
    return msgspec.convert(raw, Settings, strict=False)
