"""MySQL databases for benchmarks and tests: a per-run database URL, dropping it, and the audit that
checks a SKU's counters against the ledger and the reservations (the "no oversell, nothing stranded"
check of the inventory benchmarks and tests)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
import pymysql

from kernel.database import MysqlTarget, parse_database_url


def mysql_url_with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


def mysql_target(url: str) -> MysqlTarget:
    target = parse_database_url(url)
    assert isinstance(target, MysqlTarget), url
    return target


def drop_mysql_database(url: str) -> None:
    target = mysql_target(url)
    kwargs = target.pymysql_kwargs()
    kwargs.pop("database")
    kwargs["autocommit"] = True
    conn = pymysql.connect(**kwargs)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{target.database}`")
    finally:
        conn.close()


class Audit(msgspec.Struct, frozen=True):
    """One SKU as the truth store sees it: counters, the ledger's sums and the reservations' sums."""

    on_hand: int
    held: int
    sold: int
    ledger_on_hand: int
    ledger_held: int
    ledger_sold: int
    reservations_held: int
    reservations_confirmed: int

    @property
    def consistent(self) -> bool:
        return (
            (self.on_hand, self.held, self.sold) == (self.ledger_on_hand, self.ledger_held, self.ledger_sold)
            and self.held == self.reservations_held
            and self.sold == self.reservations_confirmed
        )


_AUDIT_SQL = (
    "SELECT on_hand, held, sold FROM inv_stock WHERE sku = {p}",
    "SELECT COALESCE(SUM(d_on_hand),0), COALESCE(SUM(d_held),0), COALESCE(SUM(d_sold),0)"
    " FROM inv_ledger WHERE sku = {p}",
    "SELECT COALESCE(SUM(CASE WHEN status='held' THEN quantity ELSE 0 END),0),"
    " COALESCE(SUM(CASE WHEN status='confirmed' THEN quantity ELSE 0 END),0)"
    " FROM inv_reservations WHERE sku = {p}",
)


def _audit_rows(rows: list[Any]) -> Audit:
    (oh, h, s), (loh, lh, ls), (rh, rc) = rows
    return Audit(
        on_hand=int(oh), held=int(h), sold=int(s),
        ledger_on_hand=int(loh), ledger_held=int(lh), ledger_sold=int(ls),
        reservations_held=int(rh), reservations_confirmed=int(rc),
    )  # fmt: skip


def audit_mysql(url: str, sku: str) -> Audit:
    conn = pymysql.connect(**mysql_target(url).pymysql_kwargs())
    try:
        with conn.cursor() as cur:
            rows = []
            for sql in _AUDIT_SQL:
                cur.execute(sql.format(p="%s"), (sku,))
                rows.append(cur.fetchone())
        return _audit_rows(rows)
    finally:
        conn.close()


def audit_sqlite(path: Path | str, sku: str) -> Audit:
    conn = sqlite3.connect(str(path))
    try:
        return _audit_rows([conn.execute(sql.format(p="?"), (sku,)).fetchone() for sql in _AUDIT_SQL])
    finally:
        conn.close()
