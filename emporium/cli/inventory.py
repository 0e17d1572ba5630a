"""``emporium inventory migrate|reconcile|stock|set-stock`` (mounted by emporium.cli)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import msgspec
import typer

from emporium.cli.context import run, settings_from
from emporium.container import Container
from inventory.domain import InventoryError
from inventory.sqlite import migrate_sqlite
from kernel.database import MysqlTarget, parse_database_url
from kernel.settings import Settings

if TYPE_CHECKING:
    from emporium.adapters import InventoryEngine

T = TypeVar("T")

inventory_app = typer.Typer(help="Inventory: schema migrations, reconcile Redis from MySQL, stock levels.")


def _settings(ctx: typer.Context) -> Settings:
    return settings_from(ctx)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; refusals become one clear line on stderr and exit code 2."""
    try:
        return run(coro)
    except InventoryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


async def _with_engine(settings: Settings, use: Callable[[InventoryEngine], Awaitable[T]]) -> T:
    """``use`` the engine of a one-shot command (no background sweeper: the server runs that)."""
    container = Container(settings, inventory_options={"sweep_interval": None})
    engine = container.inventory_engine()
    async with container:
        return await use(engine)


@inventory_app.command()
def migrate(ctx: typer.Context) -> None:
    """Apply pending schema migrations to the inventory database (safe to repeat)."""
    settings = _settings(ctx)
    target = parse_database_url(settings.database_url)
    if isinstance(target, MysqlTarget):
        from inventory.cluster import migrate_mysql  # the MySQL driver loads only when it is the database

        applied = asyncio.run(migrate_mysql(target))
    else:
        target.path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(str(target.path), isolation_level=None) as conn:
            applied = migrate_sqlite(conn)
    typer.echo(json.dumps({"applied": applied, "database": target.__class__.__name__}))


@inventory_app.command()
def reconcile(ctx: typer.Context) -> None:
    """Rebuild the Redis counters from MySQL (new epoch) and expire due holds; prints a report."""

    async def reconcile_and_expire(engine: InventoryEngine) -> dict[str, object]:
        report = await engine.reconcile()
        expired = await engine.expire_due()
        return {**msgspec.to_builtins(report), "expired": report.expired + expired}

    typer.echo(json.dumps(_run(_with_engine(_settings(ctx), reconcile_and_expire))))


@inventory_app.command()
def stock(ctx: typer.Context, sku: str) -> None:
    """Print the acknowledged stock of a SKU."""
    from inventory.wire import stock_json  # the web stack loads only for the commands that print stock

    async def get_stock(engine: InventoryEngine) -> dict[str, object]:
        return stock_json(await engine.get_stock(sku))

    typer.echo(json.dumps(_run(_with_engine(_settings(ctx), get_stock))))


@inventory_app.command("set-stock")
def set_stock(
    ctx: typer.Context,
    sku: str,
    on_hand: int,
    limit: Annotated[int | None, typer.Option(help="Per-customer limit (0 removes it).")] = None,
) -> None:
    """Set a SKU's on-hand quantity (e.g. to start a flash sale), like PUT /v1/stock/{sku}."""
    from inventory.wire import stock_json  # the web stack loads only for the commands that print stock

    async def set_on_hand(engine: InventoryEngine) -> dict[str, object]:
        return stock_json(await engine.set_on_hand(sku, on_hand, per_customer_limit=limit))

    typer.echo(json.dumps(_run(_with_engine(_settings(ctx), set_on_hand))))


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root ``emporium`` command."""
    app.add_typer(inventory_app, name="inventory")
