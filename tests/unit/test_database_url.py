"""The relational store URL: its options, their checks, and the TLS settings PyMySQL gets."""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi
import pytest

from kernel.database import MysqlTarget, SqliteTarget, parse_database_url


def mysql(url: str) -> MysqlTarget:
    target = parse_database_url(url)
    assert isinstance(target, MysqlTarget)
    return target


def test_defaults_keep_pymysql_preferred_tls() -> None:
    target = mysql("mysql://shop:s%40cret@db.example:3307/emporium")
    assert (target.host, target.port, target.user, target.password) == ("db.example", 3307, "shop", "s@cret")
    assert (target.pool_size, target.ssl_mode, target.ssl_ca) == (10, "preferred", None)
    kwargs = target.pymysql_kwargs()
    assert "ssl" not in kwargs and "ssl_disabled" not in kwargs


def test_sqlite_paths() -> None:
    assert parse_database_url("sqlite:///rel/db.sqlite") == SqliteTarget(Path("rel/db.sqlite"))
    assert parse_database_url("sqlite:////abs/db.sqlite") == SqliteTarget(Path("/abs/db.sqlite"))


def test_disabled_turns_tls_off() -> None:
    assert mysql("mysql://h/db?ssl_mode=disabled").pymysql_kwargs()["ssl_disabled"] is True


@pytest.mark.parametrize(
    ("mode", "verify", "hostname"),
    [
        ("required", ssl.CERT_NONE, False),
        ("verify_ca", ssl.CERT_REQUIRED, False),
        ("verify_identity", ssl.CERT_REQUIRED, True),
    ],
)
def test_strict_modes_share_one_context(mode: str, verify: ssl.VerifyMode, hostname: bool) -> None:
    first = mysql(f"mysql://h/db?ssl_mode={mode}").pymysql_kwargs()["ssl"]
    again = mysql(f"mysql://other/db2?ssl_mode={mode}").pymysql_kwargs()["ssl"]
    assert isinstance(first, ssl.SSLContext) and first is again  # built once per process, not per connect
    assert (first.verify_mode, first.check_hostname) == (verify, hostname)


def test_a_ca_file_is_used() -> None:
    target = mysql(f"mysql://h/db?ssl_mode=verify_ca&ssl_ca={certifi.where()}")
    assert target.ssl_ca == certifi.where()
    context = target.pymysql_kwargs()["ssl"]
    assert isinstance(context, ssl.SSLContext) and context.get_ca_certs()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://h/db?ssl_mode=sometimes", "ssl_mode must be one of"),
        ("mysql://h/db?ssl_mode=verify_ca&ssl_ca=/no/such/ca.pem", "is not a readable file"),
        ("mysql://h/db?pool_size=0", "pool_size must be"),
        ("mysql://h/db?pool_size=ten", "pool_size must be"),
        ("mysql://h/db?sslmode=required", "unknown MySQL URL option(s) sslmode"),
        ("postgres://h/db", "unsupported database URL"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_database_url(url)
