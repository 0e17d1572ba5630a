"""Relational store URLs shared by ingest and inventory: ``sqlite:///PATH`` or ``mysql://USER:PASS@HOST:PORT/DB``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec


class SqliteTarget(msgspec.Struct, frozen=True):
    path: Path


class MysqlTarget(msgspec.Struct, frozen=True):
    host: str
    port: int
    user: str
    password: str
    database: str
    pool_size: int = 10

    def pymysql_kwargs(self) -> dict[str, object]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database,
            "autocommit": False,
            "charset": "utf8mb4",
        }


def parse_database_url(url: str) -> SqliteTarget | MysqlTarget:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///rel/path -> "rel/path"; sqlite:////abs/path -> "/abs/path"
        raw = unquote(parts.path)
        return SqliteTarget(path=Path(raw[1:] if raw.startswith("/") else raw or ":memory:"))
    if parts.scheme in {"mysql", "mariadb", "mysql+pymysql"}:
        query = parse_qs(parts.query)
        return MysqlTarget(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            database=parts.path.lstrip("/") or "emporium",
            pool_size=int(query.get("pool_size", ["10"])[0]),
        )
    raise ValueError(
        f"unsupported database URL {url!r}: use sqlite:///PATH or mysql://USER:PASS@HOST:PORT/DB"
    )
