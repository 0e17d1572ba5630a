"""The composition root: the adapter registry (emporium.adapters) and the Container's lifecycle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from emporium.adapters import EVENT_LOG, INGEST_STORE, PORTS, SEARCH_INDEX, AdapterConfigError
from emporium.cli import app
from emporium.container import Container
from kernel.settings import Settings, load_settings


def settings_with(tmp_path: Path, **urls: str) -> Settings:
    return load_settings(env={}, data_dir=str(tmp_path / "data"), **urls)


class Recorder:
    """Fake adapters and services that write what happens to them into one shared journal."""

    def __init__(self) -> None:
        self.journal: list[str] = []

    def adapter(self, name: str, *, fail_start: bool = False) -> Any:
        journal = self.journal

        class Fake:
            async def start(self) -> None:
                journal.append(f"start {name}")
                if fail_start:
                    raise ConnectionError(f"{name} is down")

            async def ensure_index(self) -> None:
                await self.start()

            async def close(self) -> None:
                journal.append(f"close {name}")

        return Fake()

    def service(self, name: str) -> Any:
        journal = self.journal

        class Service:
            def start(self) -> None:
                journal.append(f"start {name}")

            async def stop(self) -> None:
                journal.append(f"stop {name}")

        return Service()


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """The embedded schemes of three ports build fakes instead of real adapters."""
    recorder = Recorder()
    monkeypatch.setitem(EVENT_LOG.constructors, "sqlite", lambda url, **_: recorder.adapter("event log"))
    monkeypatch.setitem(SEARCH_INDEX.constructors, "tantivy", lambda url: recorder.adapter("search index"))
    monkeypatch.setitem(INGEST_STORE.constructors, "sqlite", lambda url: recorder.adapter("ingest store"))
    return recorder


def test_an_unknown_scheme_names_the_port_its_env_var_and_the_accepted_schemes(tmp_path: Path) -> None:
    container = Container(settings_with(tmp_path, search_url="solr://localhost:8983"))
    with pytest.raises(AdapterConfigError) as refused:
        container.search_index()
    message = str(refused.value)
    assert message.startswith("search index: unsupported URL scheme 'solr' in EMPORIUM_SEARCH_URL")
    assert "accepted schemes: tantivy, http, https, elasticsearch" in message


def test_every_port_refuses_an_unknown_scheme_the_same_way() -> None:
    """And never echoes the whole URL, which may carry a password."""
    for port in PORTS:
        with pytest.raises(AdapterConfigError) as refused:
            port.open("gopher://user:secret@somewhere")
        message = str(refused.value)
        assert message.startswith(f"{port.name}: unsupported URL scheme 'gopher'")
        assert port.env_var in message and ", ".join(port.schemes) in message and "secret" not in message


def test_mysql_inventory_without_redis_is_refused(tmp_path: Path) -> None:
    container = Container(settings_with(tmp_path, database_url="mysql://u:p@127.0.0.1:1/db"))
    with pytest.raises(AdapterConfigError, match="EMPORIUM_CACHE_URL=redis://"):
        container.inventory_engine()


async def test_adapters_are_created_on_first_request_only(tmp_path: Path) -> None:
    """A command that needs the event log never touches the other ports, even misconfigured ones."""
    settings = settings_with(
        tmp_path,
        search_url="nonsense://",
        cache_url="redis://127.0.0.1:1/0",
        recommendations_url="cassandra://127.0.0.1:1/nowhere",
    )
    container = Container(settings)
    event_log = container.event_log()
    assert container.event_log() is event_log and container.runtime.event_log is event_log
    async with container:
        await event_log.ping()
    with pytest.raises(AdapterConfigError):
        container.search_index()


async def test_adapters_start_in_request_order_and_close_in_reverse(
    tmp_path: Path, recorder: Recorder
) -> None:
    container = Container(settings_with(tmp_path))
    container.search_index(), container.event_log(), container.ingest_store()
    assert recorder.journal == []  # created, not started
    async with container:
        await container.start(recorder.service("projector"))
        with pytest.raises(RuntimeError, match="requested after the container started"):
            container.out_of_stock_set()
    assert recorder.journal == [
        "start search index",
        "start event log",
        "start ingest store",
        "start projector",
        "stop projector",
        "close ingest store",
        "close event log",
        "close search index",
    ]


async def test_a_failed_start_closes_what_already_started(
    tmp_path: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        INGEST_STORE.constructors, "sqlite", lambda url: recorder.adapter("ingest store", fail_start=True)
    )
    container = Container(settings_with(tmp_path))
    container.event_log(), container.ingest_store(), container.search_index()
    with pytest.raises(ConnectionError, match="ingest store is down"):
        async with container:
            raise AssertionError("not reached")
    assert recorder.journal == ["start event log", "start ingest store", "close event log"]


def test_a_cli_command_reports_a_bad_url_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["--data-dir", str(tmp_path), "--log-format", "console", "rebuild", "search", "--no-progress"],
        env={"EMPORIUM_SEARCH_URL": "solr://localhost:8983", "EMPORIUM_LOG_LEVEL": "warning"},
    )
    assert result.exit_code == 2, result.output
    assert "error: search index: unsupported URL scheme 'solr' in EMPORIUM_SEARCH_URL" in result.output
