"""Open the search index named by ``Settings.search_url``.

* ``tantivy:///ABS/PATH`` (or ``tantivy://REL/PATH``): the embedded Tantivy adapter under that folder;
* ``http://HOST:PORT``, ``https://USER:PASS@HOST:PORT``, ``elasticsearch://HOST:PORT`` (plain http):
  the Elasticsearch adapter; several hosts may be comma-separated.

Query options: ``index=NAME`` names the alias (Elasticsearch) or pointer (Tantivy) and prefixes the
physical indexes, default ``products`` (tests use unique names to stay isolated).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from search.port import RebuildableSearchIndex

DEFAULT_INDEX_NAME = "products"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,200}$")


def open_search_index(url: str) -> RebuildableSearchIndex:
    """The adapter for ``url`` (not yet connected: call ``ensure_index`` before use)."""
    parts = urlsplit(url)
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    name = options.pop("index", DEFAULT_INDEX_NAME)
    if not _NAME.match(name):
        raise ValueError(f"bad index name {name!r}: lowercase letters, digits, '_', '-', '.'")
    if options:
        raise ValueError(f"unknown search URL options: {', '.join(sorted(options))}")
    scheme = parts.scheme.lower()
    if scheme == "tantivy":
        from search.tantivy import TantivySearchIndex

        path = (parts.netloc + parts.path) if parts.netloc else parts.path
        if not path:
            raise ValueError(f"tantivy URL needs a folder: {url!r} (e.g. tantivy:///var/lib/emporium/search)")
        return TantivySearchIndex(Path(path), name)
    if scheme in ("http", "https", "elasticsearch"):
        from search.elasticsearch import ElasticsearchSearchIndex

        if not parts.hostname:
            raise ValueError(f"search URL needs a host: {url!r}")
        http = "http" if scheme == "elasticsearch" else scheme
        userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        hosts = [f"{http}://{userinfo}{host}" for host in parts.netloc.rsplit("@", 1)[-1].split(",")]
        return ElasticsearchSearchIndex(hosts, name)
    raise ValueError(f"unsupported search URL {url!r}: use tantivy:///PATH or http(s)://HOST:PORT")
