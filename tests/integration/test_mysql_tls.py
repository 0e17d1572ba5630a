"""``ssl_mode`` against a real MariaDB (the local stack's, which offers no TLS): ``disabled`` and
``preferred`` connect in plain text; ``required`` refuses to, instead of silently sending the password
and data unencrypted."""

from __future__ import annotations

import pymysql
import pytest

from kernel.database import MysqlTarget, parse_database_url


def target(mysql_url: str, mode: str) -> MysqlTarget:
    parsed = parse_database_url(f"{mysql_url.split('?')[0]}?ssl_mode={mode}")
    assert isinstance(parsed, MysqlTarget)
    return parsed


def cipher(t: MysqlTarget) -> str:
    kwargs = t.pymysql_kwargs()
    kwargs.pop("database")
    with pymysql.connect(**kwargs, connect_timeout=5) as conn, conn.cursor() as cursor:
        cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        row = cursor.fetchone()
        return str(row[1]) if row else ""


@pytest.mark.parametrize("mode", ["disabled", "preferred"])
def test_plain_modes_connect(mysql_url: str, mode: str) -> None:
    assert cipher(target(mysql_url, mode)) == ""


@pytest.mark.parametrize("mode", ["required", "verify_ca", "verify_identity"])
def test_strict_modes_refuse_a_server_without_tls(mysql_url: str, mode: str) -> None:
    with pytest.raises(pymysql.err.OperationalError, match="SSL is required"):
        cipher(target(mysql_url, mode))
