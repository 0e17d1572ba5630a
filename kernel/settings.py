"""Configuration: one URL per port, read once at start from env vars or a TOML file.

Precedence: ``EMPORIUM_<NAME>`` env var > ``[emporium]`` table of the TOML file named by
``EMPORIUM_CONFIG`` (or ``./emporium.toml`` when present) > embedded defaults under the data dir.
"""

from __future__ import annotations

import os
import re
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
    # The analytics lake: activity and sales archived as Parquet, and the jobs' versioned outputs
    # (default: a folder in the data dir; a shared file system path in a cluster).
    lake_url: str
    spark_url: str = "local[*]"
    # The activity archive writes a file group at the latest this long after its oldest buffered event
    # (sooner once it holds 100k rows): more makes fewer, larger Parquet files; less, fresher analytics.
    archive_flush_s: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    # The analytics jobs' knobs for the size of the shop: a trending entry needs this many events from
    # this many distinct shoppers (a small shop lowers them; a handful of events must still not trend);
    # the recommendations are judged on the newest fraction of the interactions (the holdout).
    trending_min_count: Annotated[int, msgspec.Meta(ge=1)] = 5
    trending_min_actors: Annotated[int, msgspec.Meta(ge=1)] = 3
    recs_holdout: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.2
    admin_token: str | None = None
    # The largest feed, counted after decompression (a gzip body of a megabyte can hold gigabytes).
    feed_max_bytes: Annotated[int, msgspec.Meta(gt=0)] = 200 * 1024 * 1024
    # The longest CSV/NDJSON line or JSON-array element; a longer one is rejected alone.
    feed_max_line_bytes: Annotated[int, msgspec.Meta(gt=0)] = 1024 * 1024
    host: str = "127.0.0.1"
    port: int = 8000
    # Server caps (0 turns one off): the largest request head (431 past it), the time a client has to
    # send a whole head (slowloris), connections plus requests in flight before new requests get 503,
    # and how long an idle keep-alive connection stays open.
    http_max_header_bytes: Annotated[int, msgspec.Meta(ge=0)] = 64 * 1024
    http_header_timeout_s: Annotated[float, msgspec.Meta(ge=0)] = 10.0
    http_max_connections: Annotated[int, msgspec.Meta(ge=0)] = 2048
    http_keep_alive_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    log_level: str = "info"
    log_format: str = "json"  # "json" or "console"
    # Retention of the event-log topics nobody replays (storefront activity, dead letters): by age and by
    # size per partition; 0 keeps them forever. The topics read models are rebuilt from are always kept.
    event_log_retention_s: Annotated[float, msgspec.Meta(ge=0)] = 7 * 24 * 3600
    event_log_retention_bytes: Annotated[int, msgspec.Meta(ge=0)] = 1024 * 1024 * 1024
    # Run projectors inside `serve` (embedded default); a cluster deployment runs `emporium project`.
    inprocess_projectors: bool = True
    # Rendered search pages cached per serving process (~10 KiB each, plus a sixteenth as many index
    # answers at ~45 KiB: ~200 MB when full); 0 disables. The stock filter is never cached.
    search_cache_entries: int = 16384
    # How long cached search pages outlive a stock-out (they already hide the item; only totals and
    # facet counts may still count it): more keeps more pages through a flash sale, 0 drops them at once.
    search_stock_out_grace_s: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    # Homepage documents: rebuilt when older than this even if nothing changed, and at most once per
    # min-rebuild interval when their ingredients change (one worker builds; everyone serves the old copy).
    homepage_max_age_s: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    homepage_min_rebuild_s: Annotated[float, msgspec.Meta(ge=0)] = 2.0
    # The server secret keying the stored hashes of API keys (HMAC-SHA256). Unset: one is generated once
    # into <data_dir>/key-secret (mode 0600); every server of a cluster must be given the same one.
    key_secret: str | None = None
    # Rate limits, in the `limits` notation ("N/second;M/minute"), counted per route group and caller:
    # anonymous callers (and wrong keys) by client address, suppliers and storefronts by key. False turns
    # every rate limit off, the per-customer ones and the hold-units cap included (benchmark baselines).
    rate_limits: bool = True
    rate_limit_anonymous: str = "30/second;1200/minute"
    rate_limit_supplier: str = "20/second;1200/minute"
    rate_limit_storefront: str = "2000/second"
    # Units one customer of one storefront may ask to hold within max_hold_seconds: the per-customer
    # rate limit of reservations, and so a cap on the units it holds at once (refused asks count too).
    customer_hold_units: Annotated[int, msgspec.Meta(ge=1)] = 100
    # The longest hold a reservation may ask for (hold_seconds above it is a 422).
    max_hold_seconds: Annotated[int, msgspec.Meta(ge=1, le=24 * 3600)] = 900
    # Proxies whose X-Forwarded-For names the client: comma-separated addresses or networks.
    trusted_proxies: str = ""

    @property
    def embedded(self) -> bool:
        return self.event_log_url.startswith("sqlite:")

    def public_dict(self) -> dict[str, Any]:
        """Settings safe to print (no secrets)."""
        data: dict[str, Any] = msgspec.to_builtins(self, enc_hook=str)
        data["admin_token"] = "***" if self.admin_token else None
        data["key_secret"] = "***" if self.key_secret else None
        return data


def env_var(field: str) -> str:
    """The environment variable that sets a Settings field (``search_url`` -> ``EMPORIUM_SEARCH_URL``)."""
    return ENV_PREFIX + field.upper()


# Env spellings of booleans that msgspec's lax mode does not read itself ("true"/"false"/"1"/"0" it does).
_BOOL_WORDS = {"yes": "true", "on": "true", "no": "false", "off": "false"}
_ERROR_PATH = re.compile(r"at `\$\.(\w+)")


def _from_env(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Field -> (env var, value) for every ``EMPORIUM_<FIELD>`` set; values stay text for msgspec."""
    found: dict[str, tuple[str, str]] = {}
    info = msgspec.inspect.type_info(Settings)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        var = env_var(field.name)
        value = env.get(var)
        if value is None:
            continue
        if not isinstance(field.type, msgspec.inspect.StrType | msgspec.inspect.UnionType):
            value = value.strip()
        if isinstance(field.type, msgspec.inspect.BoolType):
            value = _BOOL_WORDS.get(value.lower(), value)
        found[field.name] = (var, value)
    return found


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build Settings once; pass ``env`` in tests instead of mutating ``os.environ``.

    A value that does not fit raises ``msgspec.ValidationError`` naming the field and where it came from.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    origin: dict[str, str] = {}

    config_path = env.get(ENV_PREFIX + "CONFIG")
    candidate = Path(config_path) if config_path else Path("emporium.toml")
    if config_path or candidate.exists():
        with candidate.open("rb") as fh:
            table = tomllib.load(fh).get("emporium", {})
        raw.update(table)
        origin.update(dict.fromkeys(table, f"[emporium] in {candidate}"))
    for name, (var, value) in _from_env(env).items():
        raw[name], origin[name] = value, f"env {var}"
    given = {k: v for k, v in overrides.items() if v is not None}
    raw.update(given)
    origin.update(dict.fromkeys(given, "an explicit option"))

    data_dir = Path(raw.get("data_dir", ".emporium")).expanduser().resolve()
    raw["data_dir"] = data_dir
    raw.setdefault("event_log_url", f"sqlite:///{data_dir / 'events.db'}")
    raw.setdefault("search_url", f"tantivy:///{data_dir / 'search'}")
    raw.setdefault("cache_url", "memory://")
    raw.setdefault("database_url", f"sqlite:///{data_dir / 'emporium.db'}")
    raw.setdefault("recommendations_url", f"sqlite:///{data_dir / 'recommendations.db'}")
    raw.setdefault("lake_url", f"file://{data_dir / 'lake'}")
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        bad = _ERROR_PATH.search(str(exc))
        source = origin.get(bad.group(1)) if bad else None
        if source is None:
            raise
        raise msgspec.ValidationError(f"{exc} (from {source})") from exc
